package dev.torus.comm;

import dev.torus.DType;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * What a rank believes a collective is: op, reduce op, dtype, element count and root.
 * Every rank must call the same collective at the same sequence number.
 *
 * <p>The fingerprint is enforced on every operation at no cost in messages: it is
 * folded into the transport tag ({@link #wireTag}), so the messages of two ranks
 * that disagree never match each other. Such an operation stalls instead of
 * delivering garbage (or, for a longer message, crashing Gloo's I/O thread), and the
 * stall is resolved into a {@link CollectiveMismatchException} by the mismatch probe
 * of {@link FailureDiagnosis}. The explicit all-gather of fingerprints before each op
 * ({@code debugChecks}) remains available for immediate detection.
 *
 * @param type   the operation
 * @param reduce the {@link ReduceOp} ordinal, or -1
 * @param dtype  element type, or {@code null} for a barrier
 * @param count  elements per rank as the op defines them
 * @param root   the root rank, or -1
 */
record Fingerprint(OpType type, int reduce, DType dtype, long count, int root) {

    /** Four longs: a packed header, the count, the sequence number, and 0. */
    long[] toLongs(long seq) {
        return new long[] {head(), count, seq, 0};
    }

    private long head() {
        return ((long) type.ordinal() << 32) | ((long) (reduce + 1) << 24)
                | ((long) (dtype == null ? 255 : dtype.ordinal()) << 16) | (root + 1);
    }

    /**
     * The 32-bit transport tag of this op at {@code seq}: the sequence number XOR a hash
     * of the fingerprint. Ranks that agree compute the same tag; ranks that disagree
     * compute different tags except with probability 2^-32. Consecutive ops with the same
     * fingerprint never share a tag, because their sequence numbers differ.
     */
    long wireTag(long seq) {
        return (seq ^ hash32()) & 0xffff_ffffL;
    }

    /** 32 well-mixed bits of the fingerprint (no sequence number); stable across JVMs. */
    int hash32() {
        long z = head() * 0x9E3779B97F4A7C15L + count;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        z ^= z >>> 31;
        return (int) (z ^ (z >>> 32));
    }

    String describe() {
        String r = reduce >= 0 ? "(" + ReduceOp.values()[reduce] + ")" : "";
        String d = dtype == null ? "" : " of " + count + " x " + dtype;
        String rt = root >= 0 ? " root " + root : "";
        return type.label() + r + d + rt;
    }

    /** Describes a fingerprint received as four longs from another rank (values may be anything). */
    static String describe(long[] f) {
        int type = (int) (f[0] >>> 32);
        int reduce = (int) ((f[0] >>> 24) & 0xff) - 1;
        int dt = (int) ((f[0] >>> 16) & 0xff);
        int root = (int) (f[0] & 0xffff) - 1;
        String name = type >= 0 && type < OpType.values().length ? OpType.values()[type].label() : "op#" + type;
        String r = reduce >= 0 && reduce < ReduceOp.values().length ? "(" + ReduceOp.values()[reduce] + ")" : "";
        String d = dt < DType.values().length ? " of " + f[1] + " x " + DType.values()[dt] : "";
        return name + r + d + (root >= 0 ? " root " + root : "") + " at seq " + f[2];
    }

    /**
     * Throws {@link CollectiveMismatchException} unless every rank's entry of {@code all}
     * is the same; the message names the majority and the culprits.
     */
    static void requireAgreement(long[][] all, long seq, String where) {
        Map<String, List<Integer>> groups = new TreeMap<>();
        Map<String, String> names = new TreeMap<>();
        for (int r = 0; r < all.length; r++) {
            String k = Arrays.toString(all[r]);
            groups.computeIfAbsent(k, x -> new ArrayList<>()).add(r);
            names.put(k, describe(all[r]));
        }
        if (groups.size() == 1) {
            return;
        }
        String majority = null;
        for (var e : groups.entrySet()) {
            if (majority == null || e.getValue().size() > groups.get(majority).size()) {
                majority = e.getKey();
            }
        }
        StringBuilder sb = new StringBuilder("collective mismatch at seq " + seq + " (" + where + "): "
                + groups.get(majority) + " called " + names.get(majority));
        for (var e : groups.entrySet()) {
            if (!e.getKey().equals(majority)) {
                sb.append("; culprit rank(s) ").append(e.getValue()).append(" called ").append(names.get(e.getKey()));
            }
        }
        throw new CollectiveMismatchException(sb.toString());
    }

    /** Writes this rank's fingerprint after the size() slots of a 32-byte-per-rank exchange buffer. */
    static void pack(java.nio.ByteBuffer buf, int n, long[] mine) {
        for (int i = 0; i < 4; i++) {
            buf.putLong(32 * n + 8 * i, mine[i]);
        }
    }

    /** Reads every rank's fingerprint from the first size() slots of the exchange buffer. */
    static long[][] unpack(java.nio.ByteBuffer buf, int n) {
        long[][] all = new long[n][4];
        for (int r = 0; r < n; r++) {
            for (int i = 0; i < 4; i++) {
                all[r][i] = buf.getLong(32 * r + 8 * i);
            }
        }
        return all;
    }
}
