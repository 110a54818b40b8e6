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
 * </ul>
 * Both work for every m ≥ 1, including m &lt; p.
 */
public enum PipelineSchedule {
    GPIPE,
    ONE_F_ONE_B;

    /** One pass of one micro-batch. */
    public record Action(boolean forward, int microBatch) {
        @Override
        public String toString() {
            return (forward ? "F" : "B") + microBatch;
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
                out.add(new Action(true, i));
            }
            for (int i = 0; i < microBatches; i++) {
                out.add(new Action(false, i));
            }
            return out;
        }
        int warmup = Math.min(microBatches, stages - 1 - stage);
        int f = 0;
        int b = 0;
        for (; f < warmup; f++) {
            out.add(new Action(true, f));
        }
        while (f < microBatches) {
            out.add(new Action(true, f++));
            out.add(new Action(false, b++));
        }
        while (b < microBatches) {
            out.add(new Action(false, b++));
        }
        return out;
    }

    /** The idle fraction of an ideal pipeline of equal stages: (p−1)/(m+p−1) for both schedules. */
    public double theoreticalBubble(int stages, int microBatches) {
        return (stages - 1.0) / (microBatches + stages - 1.0);
    }

    /** Parses {@code gpipe} or {@code 1f1b}; {@code argName} names the option in the error. */
    public static PipelineSchedule parse(String argName, String text) {
        String t = text == null ? "" : text.trim().toLowerCase(java.util.Locale.ROOT);
        return switch (t) {
            case "gpipe" -> GPIPE;
            case "1f1b" -> ONE_F_ONE_B;
            default -> throw new IllegalArgumentException(argName + " must be gpipe or 1f1b, got '" + text + "'");
        };
    }
}
