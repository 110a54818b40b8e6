package dev.torus.parallel.pipeline;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The order in which one pipeline stage runs the forward (F) and backward (B, W) passes of the
 * micro-batches of a step. Every schedule runs the backward passes of each model chunk in micro-batch
 * order 0, 1, ..., m-1, so each parameter's gradient accumulates in the same order as in one process that
 * runs the micro-batches one after the other: the gradients are bitwise equal to it.
 *
 * <ul>
 *   <li>{@link #GPIPE}: all m forwards, then all m backwards. Stage s stashes the activations of all
 *       m micro-batches; the idle fraction is (p−1)/(m+p−1).</li>
 *   <li>{@link #ONE_F_ONE_B}: p−1−s forwards to fill the pipe (at most m), then one forward and one
 *       backward in turn, then the remaining backwards. The same idle fraction, but stage s holds at
 *       most min(m, p−s) micro-batches of activations.</li>
 *   <li>{@link #interleaved(int) interleaved(v)} (Megatron's interleaved 1F1B): each rank holds v model
 *       chunks, virtual stages s, p+s, 2p+s, …, so a micro-batch crosses every rank v times. Forwards run
 *       micro-batches in groups of p (the last group may be smaller), each group through chunk 0, then
 *       chunk 1, …; backwards the same way with the chunks in reverse order. A rank first runs Megatron's
 *       2(p−1−s) + (v−1)p forwards (at most mv), then alternates. Where the next pass of the preferred kind
 *       could not proceed (m not a multiple of p, or p = 2, where activations and gradients share one
 *       send lane), the order is found by a run on a model clock that takes the other kind instead: see
 *       {@code interleavedTable}. The idle fraction falls to
 *       (p−1)/(vm+p−1), for v× the transfers.</li>
 *   <li>{@link #ZB_H1} (zero bubble, in the spirit of the handcrafted schedule 1): 1F1B with each
 *       backward split into the input gradient (B, which the stage before waits for) and the weight
 *       gradient (W, which nobody waits for). The gradient goes upstream as soon as B is done, so the
 *       cool-down's critical path runs through B passes only, and each W runs right after its B, in the
 *       time the stage would otherwise wait for the next gradient. The activations held are those of
 *       1F1B. Layers that cannot split their backward ({@code Layer#splitsBackward}) do all of it in
 *       B.</li>
 * </ul>
 * Every schedule works for every m ≥ 1, including m &lt; p and m = 1. Instances are immutable.
 */
public final class PipelineSchedule {
    private enum Family { GPIPE, ONE_F_ONE_B, INTERLEAVED, ZB_H1 }

    /** All forwards, then all backwards. */
    public static final PipelineSchedule GPIPE = new PipelineSchedule(Family.GPIPE, 1);
    /** One forward, one backward (Megatron's non-interleaved schedule). */
    public static final PipelineSchedule ONE_F_ONE_B = new PipelineSchedule(Family.ONE_F_ONE_B, 1);
    /** 1F1B with the backward split into input-gradient and weight-gradient passes. */
    public static final PipelineSchedule ZB_H1 = new PipelineSchedule(Family.ZB_H1, 1);

    /** The most virtual stages per rank {@link #interleaved} takes. */
    public static final int MAX_CHUNKS = 64;

    /** A pass: forward, backward (the input gradient, and the weight gradient unless a W follows), weight gradient. */
    public enum Kind { F, B, W }

    /**
     * One pass of one micro-batch through one of the rank's model chunks (always 0 but for interleaved
     * schedules).
     */
    public record Action(Kind kind, int microBatch, int chunk) {
        public Action(Kind kind, int microBatch) {
            this(kind, microBatch, 0);
        }

        public boolean forward() {
            return kind == Kind.F;
        }

        /** F3, B3, W3; F3c1 for micro-batch 3 on chunk 1. */
        @Override
        public String toString() {
            return kind.name() + microBatch + (chunk > 0 ? "c" + chunk : "");
        }
    }

    private final Family family;
    private final int chunks;

    private PipelineSchedule(Family family, int chunks) {
        this.family = family;
        this.chunks = chunks;
    }

    /**
     * Interleaved 1F1B with {@code chunks} (v) model chunks per rank. v = 1 is {@link #ONE_F_ONE_B}.
     *
     * @throws IllegalArgumentException if v is not in [1, {@value #MAX_CHUNKS}]
     */
    public static PipelineSchedule interleaved(int chunks) {
        if (chunks < 1 || chunks > MAX_CHUNKS) {
            throw new IllegalArgumentException("the virtual stages per rank (v) of an interleaved schedule must be in [1, "
                    + MAX_CHUNKS + "], got " + chunks);
        }
        return chunks == 1 ? ONE_F_ONE_B : new PipelineSchedule(Family.INTERLEAVED, chunks);
    }

    /** GPipe, 1F1B, interleaved with 2 chunks, ZB-H1: one of each family, as tests and benchmarks sweep them. */
    public static List<PipelineSchedule> representatives() {
        return List.of(GPIPE, ONE_F_ONE_B, interleaved(2), ZB_H1);
    }

    /** The model chunks (virtual stages) each rank holds: v for interleaved schedules, otherwise 1. */
    public int chunks() {
        return chunks;
    }

    /** True when layers that can should split their backward into B and W passes (ZB-H1). */
    public boolean splitsWeightGradients() {
        return family == Family.ZB_H1;
    }

    /** True for {@link #interleaved} with v ≥ 2. */
    public boolean isInterleaved() {
        return family == Family.INTERLEAVED;
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
        if (family == Family.INTERLEAVED && stages < 2) {
            throw new IllegalArgumentException("an interleaved schedule needs at least 2 stages, got " + stages
                    + " (with one stage every chunk is on the same rank: use 1f1b)");
        }
        List<Action> out = new ArrayList<>((family == Family.ZB_H1 ? 3 : 2) * microBatches * chunks);
        if (family == Family.GPIPE) {
            for (int i = 0; i < microBatches; i++) {
                out.add(new Action(Kind.F, i));
            }
            for (int i = 0; i < microBatches; i++) {
                out.add(new Action(Kind.B, i));
            }
            return out;
        }
        if (family == Family.INTERLEAVED) {
            return interleavedActions(stage, stages, microBatches, out);
        }
        boolean split = family == Family.ZB_H1;
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

    private List<Action> interleavedActions(int stage, int stages, int m, List<Action> out) {
        out.addAll(interleavedTable(stages, m).get(stage));
        return out;
    }

    /**
     * Every rank's actions under the interleaved schedule, found by running the pipeline on a model clock
     * (F takes 1, B 2). Each rank takes its forwards and backwards in the fixed group order of
     * {@link #orderedPass}, runs Megatron's warm-up count of forwards, then alternates, taking the other
     * kind when the preferred one is not ready. A pass is ready only when what it receives is at the head
     * of its sender's send lane to this rank (sends to one peer leave one at a time, in order, and complete
     * only when received). Since the order comes out of a run that completed under that model, and a stage's
     * waits depend only on the orders, not on timing, every real run of it completes too: no crossed pairs,
     * for every m, including the m that are not a multiple of p (where Megatron's fixed table can hang).
     */
    private List<List<Action>> interleavedTable(int p, int m) {
        int total = m * chunks;
        int virtualStages = p * chunks;
        Action[] fs = new Action[total];
        Action[] bs = new Action[total];
        for (int k = 0; k < total; k++) {
            fs[k] = orderedPass(Kind.F, k, p, m);
            bs[k] = orderedPass(Kind.B, k, p, m);
        }
        int[] nextF = new int[p];
        int[] nextB = new int[p];
        long[] free = new long[p];
        boolean[] lastWasF = new boolean[p];
        int[] warmup = new int[p];
        java.util.Map<Long, Long> forwardDone = new java.util.HashMap<>();   // (virtual stage, mb) -> finish
        java.util.Map<Long, Long> backwardDone = new java.util.HashMap<>();
        java.util.Map<Integer, java.util.ArrayDeque<Long>> lanes = new java.util.HashMap<>(); // src*p+dst -> message keys
        List<List<Action>> table = new ArrayList<>();
        for (int s = 0; s < p; s++) {
            warmup[s] = Math.min(total, 2 * (p - 1 - s) + (chunks - 1) * p);
            table.add(new ArrayList<>(2 * total));
        }
        for (int left = 2 * total * p; left > 0; left--) {
            int bestRank = -1;
            long bestStart = Long.MAX_VALUE;
            boolean bestIsF = false;
            for (int s = 0; s < p; s++) {
                long f = nextF[s] < total ? readyAt(fs[nextF[s]], s, p, m, virtualStages, forwardDone, backwardDone, lanes)
                        : Long.MAX_VALUE;
                long b = nextB[s] < total ? readyAt(bs[nextB[s]], s, p, m, virtualStages, forwardDone, backwardDone, lanes)
                        : Long.MAX_VALUE;
                boolean preferF = nextF[s] < warmup[s] || !lastWasF[s];
                boolean takeF = preferF ? f != Long.MAX_VALUE || b == Long.MAX_VALUE : b == Long.MAX_VALUE;
                long start = Math.max(free[s], takeF ? f : b);
                if ((takeF ? f : b) != Long.MAX_VALUE && start < bestStart) {
                    bestStart = start;
                    bestRank = s;
                    bestIsF = takeF;
                }
            }
            if (bestRank < 0) {
                throw new IllegalStateException("internal error: the interleaved schedule for p=" + p + ", v=" + chunks
                        + ", m=" + m + " cannot proceed");
            }
            int s = bestRank;
            Action a = bestIsF ? fs[nextF[s]++] : bs[nextB[s]++];
            lastWasF[s] = bestIsF;
            long finish = bestStart + (bestIsF ? 1 : 2);
            free[s] = finish;
            table.get(s).add(a);
            int virt = a.chunk() * p + s;
            long key = (long) virt * m + a.microBatch();
            if (bestIsF) {
                forwardDone.put(key, finish);
                if (virt > 0) {
                    lanes.get(((virt - 1) % p) * p + s).pollFirst();
                }
                if (virt < virtualStages - 1) {
                    lanes.computeIfAbsent(s * p + (virt + 1) % p, x -> new java.util.ArrayDeque<>()).addLast(key);
                }
            } else {
                backwardDone.put(key, finish);
                if (virt < virtualStages - 1) {
                    lanes.get(((virt + 1) % p) * p + s).pollFirst();
                }
                if (virt > 0) {
                    lanes.computeIfAbsent(s * p + (virt - 1) % p, x -> new java.util.ArrayDeque<>())
                            .addLast(-1 - key);
                }
            }
        }
        return table;
    }

    /**
     * When pass {@code a} of rank s could start on the model clock (Long.MAX_VALUE: not yet): once what it
     * receives was sent and is at the head of its lane (forward messages are the sending virtual stage's key
     * virt·m + mb, backward ones −1−key), and, for B, once the stage's own F is done.
     */
    private static long readyAt(Action a, int s, int p, int m, int virtualStages, java.util.Map<Long, Long> forwardDone,
                                java.util.Map<Long, Long> backwardDone,
                                java.util.Map<Integer, java.util.ArrayDeque<Long>> lanes) {
        int virt = a.chunk() * p + s;
        long own = (long) virt * m + a.microBatch();
        if (a.kind() == Kind.F) {
            if (virt == 0) {
                return 0;
            }
            long want = (long) (virt - 1) * m + a.microBatch();
            java.util.ArrayDeque<Long> lane = lanes.get(((virt - 1) % p) * p + s);
            return lane != null && !lane.isEmpty() && lane.peekFirst() == want ? forwardDone.get(want) : Long.MAX_VALUE;
        }
        Long mine = forwardDone.get(own);
        if (mine == null) {
            return Long.MAX_VALUE;
        }
        if (virt == virtualStages - 1) {
            return mine;
        }
        long want = (long) (virt + 1) * m + a.microBatch();
        java.util.ArrayDeque<Long> lane = lanes.get(((virt + 1) % p) * p + s);
        return lane != null && !lane.isEmpty() && lane.peekFirst() == -1 - want
                ? Math.max(mine, backwardDone.get(want)) : Long.MAX_VALUE;
    }

    /**
     * The k-th forward (or backward) of an interleaved rank: micro-batches in groups of p, each group
     * through every chunk in turn (in reverse chunk order for backwards).
     */
    private Action orderedPass(Kind kind, int k, int stages, int m) {
        int perGroup = stages * chunks;
        int group = k / perGroup;
        int size = Math.min(stages, m - group * stages);     // the last group may be smaller
        int j = k - group * perGroup;
        int chunk = j / size;
        int mb = group * stages + j % size;
        return new Action(kind, mb, kind == Kind.F ? chunk : chunks - 1 - chunk);
    }

    /**
     * The idle fraction of this schedule as built, on an ideal pipeline: every stage's F takes 1, its whole
     * backward 2 (B and W 1 each where they are split), transfers take no time, and each stage runs its
     * {@link #actions} in order as soon as their inputs are there. For m ≥ p this is (p−1)/(m+p−1) for GPipe
     * and 1F1B, (p−1)/(vm+p−1) interleaved (the fill and drain shrink to 1/v of a stage's pass), and for ZB-H1,
     * whose W runs right after its B, 2(p−1)/(3m+2(p−1)): W leaves the cool-down's critical path (p−1)(F+B) but
     * does not fill the warm-up gaps. With m &lt; p the run gives the exact figure where those formulas do not
     * hold. The zero-bubble paper's handcrafted placement reaches {@link #paperBubble}.
     */
    public double theoreticalBubble(int stages, int microBatches) {
        if (family == Family.INTERLEAVED && stages < 2) {
            throw new IllegalArgumentException("an interleaved schedule needs at least 2 stages, got " + stages);
        }
        List<List<Action>> all = new ArrayList<>();
        for (int s = 0; s < stages; s++) {
            all.add(actions(s, stages, microBatches));
        }
        int virtual = stages * chunks;
        boolean split = family == Family.ZB_H1;
        java.util.Map<Long, Long> done = new java.util.HashMap<>(); // (kind, virtual stage, mb) -> end
        int[] at = new int[stages];
        long[] free = new long[stages];
        boolean progress = true;
        while (progress) {
            progress = false;
            for (int s = 0; s < stages; s++) {
                while (at[s] < all.get(s).size()) {
                    Action a = all.get(s).get(at[s]);
                    int virt = a.chunk() * stages + s;
                    Long dep = switch (a.kind()) {
                        case F -> virt == 0 ? Long.valueOf(0) : done.get(key(Kind.F, virt - 1, a.microBatch()));
                        case B -> virt == virtual - 1 ? done.get(key(Kind.F, virt, a.microBatch()))
                                : done.get(key(Kind.B, virt + 1, a.microBatch()));
                        case W -> done.get(key(Kind.B, virt, a.microBatch()));
                    };
                    if (dep == null) {
                        break;
                    }
                    long end = Math.max(free[s], dep) + (a.kind() == Kind.B && !split ? 2 : 1);
                    free[s] = end;
                    done.put(key(a.kind(), virt, a.microBatch()), end);
                    at[s]++;
                    progress = true;
                }
            }
        }
        long makespan = 0;
        for (int s = 0; s < stages; s++) {
            if (at[s] < all.get(s).size()) {
                throw new IllegalStateException("internal error: the " + this + " schedule cannot complete for p="
                        + stages + ", m=" + microBatches);
            }
            makespan = Math.max(makespan, free[s]);
        }
        return 1.0 - 3.0 * microBatches * chunks / makespan;
    }

    private static long key(Kind kind, int virt, int mb) {
        return ((long) kind.ordinal() << 60) | ((long) virt << 32) | mb;
    }

    /**
     * The bubble the literature gives for the schedule (for m ≥ p): (p−1)/(m+p−1), (p−1)/(vm+p−1) interleaved,
     * and ZB-H1's (p−1)/(3m+p−1), a third of 1F1B's, which needs the paper's W placement (not built).
     */
    public double paperBubble(int stages, int microBatches) {
        return switch (family) {
            case ZB_H1 -> (stages - 1.0) / (3.0 * microBatches + stages - 1.0);
            case INTERLEAVED -> (stages - 1.0) / ((double) chunks * microBatches + stages - 1.0);
            default -> (stages - 1.0) / (microBatches + stages - 1.0);
        };
    }

    /**
     * The most micro-batches whose activations stage {@code stage} holds at once, counted per chunk (an
     * interleaved chunk holds 1/v of the rank's layers): from a micro-batch's forward to its last pass (its
     * W under ZB-H1, where the layers split their backward; its B otherwise). m for GPipe, min(m, p−s) for
     * 1F1B.
     */
    public int activationsHeld(int stage, int stages, int microBatches) {
        int held = 0;
        int most = 0;
        Kind last = family == Family.ZB_H1 ? Kind.W : Kind.B;
        for (Action a : actions(stage, stages, microBatches)) {
            if (a.kind() == Kind.F) {
                most = Math.max(most, ++held);
            } else if (a.kind() == last) {
                held--;
            }
        }
        return most;
    }

    /** The name {@link #parse} takes: gpipe, 1f1b, interleaved:V or zb-h1. */
    public String label() {
        return switch (family) {
            case GPIPE -> "gpipe";
            case ONE_F_ONE_B -> "1f1b";
            case INTERLEAVED -> "interleaved:" + chunks;
            case ZB_H1 -> "zb-h1";
        };
    }

    @Override
    public String toString() {
        return label();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof PipelineSchedule other && other.family == family && other.chunks == chunks;
    }

    @Override
    public int hashCode() {
        return family.hashCode() * 31 + chunks;
    }

    /**
     * Parses {@code gpipe}, {@code 1f1b}, {@code interleaved:V} (V virtual stages per rank) or {@code zb-h1};
     * {@code argName} names the option in the error.
     */
    public static PipelineSchedule parse(String argName, String text) {
        String t = text == null ? "" : text.trim().toLowerCase(Locale.ROOT);
        switch (t) {
            case "gpipe":
                return GPIPE;
            case "1f1b":
                return ONE_F_ONE_B;
            case "zb-h1":
                return ZB_H1;
            default:
                break;
        }
        if (t.startsWith("interleaved:")) {
            String v = t.substring("interleaved:".length());
            int chunks;
            try {
                chunks = Integer.parseInt(v);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(argName + ": the virtual stages per rank in '" + text
                        + "' must be an integer in [1, " + MAX_CHUNKS + "]");
            }
            try {
                return interleaved(chunks);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(argName + ": " + e.getMessage());
            }
        }
        throw new IllegalArgumentException(argName + " must be gpipe, 1f1b, interleaved:V or zb-h1, got '" + text + "'");
    }
}
