package dev.torus.parallel.pipeline;

import java.util.ArrayList;
import java.util.List;

/**
 * The order in which one pipeline stage runs the forward (F) and backward (B) passes of the
 * micro-batches of a step. Every schedule runs each stage's backward passes in micro-batch order
 * 0, 1, ..., m-1, so each parameter's gradient accumulates in the same order as in one process that
 * runs the micro-batches one after the other: the gradients are bitwise equal to it.
 *
 * <ul>
 *   <li>{@link #GPIPE}: all m forwards, then all m backwards. Stage s stashes the activations of all
 *       m micro-batches; the idle fraction is (p−1)/(m+p−1).</li>
 *   <li>{@link #ONE_F_ONE_B}: p−1−s forwards to fill the pipe (at most m), then one forward and one
 *       backward in turn, then the remaining backwards. The same idle fraction, but stage s holds at
 *       most min(m, p−s) micro-batches of activations.</li>
 *   <li>{@link #ZB_H1} (zero bubble, in the spirit of the handcrafted schedule 1): 1F1B with each
 *       backward split into the input gradient (B, which the stage before waits for) and the weight
 *       gradient (W, which nobody waits for). The gradient goes upstream as soon as B is done, so the
 *       cool-down's critical path runs through B passes only, and each W runs right after its B, in the
 *       time the stage would otherwise wait for the next gradient. The activations held are those of
 *       1F1B. W passes run in micro-batch order, so the weight gradients stay bitwise those of one
 *       process. Layers that cannot split their backward ({@code Layer#splitsBackward}) do all of it in
 *       B.</li>
 * </ul>
 * Both work for every m ≥ 1, including m &lt; p.
 */
public enum PipelineSchedule {
    GPIPE,
    ONE_F_ONE_B,
    ZB_H1;

    /** A pass: forward, backward (the input gradient, and the weight gradient unless a W follows), weight gradient. */
    public enum Kind { F, B, W }

    /** One pass of one micro-batch. */
    public record Action(Kind kind, int microBatch) {
        public boolean forward() {
            return kind == Kind.F;
        }

        @Override
        public String toString() {
            return kind.name() + microBatch;
        }
    }

    /** The actions of stage {@code stage} of {@code stages}, for {@code microBatches} micro-batches. */
    public List<Action> actions(int stage, int stages, int microBatches) {
        if (stages < 1) {
            throw new IllegalArgumentException("stages must be >= 1, got " + stages);
        }
        if (stage < 0 || stage >= stages) {
            throw new IllegalArgumentException("stage must be in [0, " + stages + "), got " + stage);
        }
        if (microBatches < 1) {
            throw new IllegalArgumentException("microBatches must be >= 1, got " + microBatches);
        }
        List<Action> out = new ArrayList<>(2 * microBatches);
        if (this == GPIPE) {
            for (int i = 0; i < microBatches; i++) {
                out.add(new Action(Kind.F, i));
            }
            for (int i = 0; i < microBatches; i++) {
                out.add(new Action(Kind.B, i));
            }
            return out;
        }
        boolean split = this == ZB_H1;
        int warmup = Math.min(microBatches, stages - 1 - stage);
        int f = 0;
        int b = 0;
        int w = 0;
        for (; f < warmup; f++) {
            out.add(new Action(Kind.F, f));
        }
        while (f < microBatches) {
            out.add(new Action(Kind.F, f++));
            out.add(new Action(Kind.B, b++));
            if (split) {
                out.add(new Action(Kind.W, w++));
            }
        }
        while (b < microBatches) {
            out.add(new Action(Kind.B, b++));
            if (split) {
                out.add(new Action(Kind.W, w++)); // fills the wait for the next gradient
            }
        }
        return out;
    }

    /**
     * The idle fraction of an ideal pipeline of equal stages: (p−1)/(m+p−1) for GPipe and 1F1B. For ZB-H1
     * with equal F, B and W passes, the cool-down gaps are filled by W passes and the bubble is a third of
     * 1F1B's, (p−1)/(3m+p−1) of a stage's 3m passes (the zero-bubble paper's figure for its schedule 1).
     */
    public double theoreticalBubble(int stages, int microBatches) {
        if (this == ZB_H1) {
            return (stages - 1.0) / (3.0 * microBatches + stages - 1.0);
        }
        return (stages - 1.0) / (microBatches + stages - 1.0);
    }

    /**
     * The most micro-batches whose activations stage {@code stage} holds at once: from a micro-batch's
     * forward to its last pass (its W under ZB-H1, where the layers split their backward; its B otherwise).
     * m for GPipe, min(m, p−s) for 1F1B.
     */
    public int activationsHeld(int stage, int stages, int microBatches) {
        int held = 0;
        int most = 0;
        Kind last = this == ZB_H1 ? Kind.W : Kind.B;
        for (Action a : actions(stage, stages, microBatches)) {
            if (a.kind() == Kind.F) {
                most = Math.max(most, ++held);
            } else if (a.kind() == last) {
                held--;
            }
        }
        return most;
    }

    /** The name {@link #parse} takes: gpipe, 1f1b or zb-h1. */
    public String label() {
        return switch (this) {
            case GPIPE -> "gpipe";
            case ONE_F_ONE_B -> "1f1b";
            case ZB_H1 -> "zb-h1";
        };
    }

    /** Parses {@code gpipe}, {@code 1f1b} or {@code zb-h1}; {@code argName} names the option in the error. */
    public static PipelineSchedule parse(String argName, String text) {
        String t = text == null ? "" : text.trim().toLowerCase(java.util.Locale.ROOT);
        return switch (t) {
            case "gpipe" -> GPIPE;
            case "1f1b" -> ONE_F_ONE_B;
            case "zb-h1" -> ZB_H1;
            default -> throw new IllegalArgumentException(argName + " must be gpipe, 1f1b or zb-h1, got '" + text + "'");
        };
    }
}
