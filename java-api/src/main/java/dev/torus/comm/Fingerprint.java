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

    /** Low tag bits that hold the sequence number; bits 12-30 hold the fingerprint's hash. */
    static final int SEQ_BITS = 12;
    private static final long SEQ_MASK = (1L << SEQ_BITS) - 1;
    private static final long HASH_MASK = (1L << 19) - 1;

    /**
     * The 32-bit transport tag of this op at {@code seq}: the low 12 bits of the sequence
     * number, above them 19 bits of a hash of the fingerprint, and bit 31 clear (it marks
     * the tags of internal exchanges). Ranks that agree compute the same tag; ranks that
     * disagree on the op compute different tags except with probability 2^-19, and ranks
     * at different sequence numbers always do (unless 4,096 apart). Two ops whose sequence
     * numbers differ by less than 4,096 never share a tag, whatever their fingerprints, so
     * a correct program can never have one op's messages matched to another's: ops that
     * far apart are never in flight together.
     */
    long wireTag(long seq) {
        return ((hash32() & HASH_MASK) << SEQ_BITS) | (seq & SEQ_MASK);
    }

    /**
     * Tag {@code step} (0-3) of a composite op whose own tag is {@code tag} (for example the
     * four transfers of a compressed all-reduce). It keeps the sequence bits and bit 31, so
     * it cannot meet another op's tag or an exchange's.
     */
    static long subTag(long tag, int step) {
        if (step < 0 || step > 3) {
            throw new IllegalArgumentException("step must be in [0, 3], got " + step);
        }
        return tag ^ ((long) step << 28);
    }

    /**
     * Tag of the explicit fingerprint all-gather before the op at {@code seq}: independent
     * of the fingerprint (ranks that disagree must still meet there, to find out), and with
     * bit 31 set, which no op tag has.
     */
    static long exchangeTag(long seq) {
        return (1L << 31) | (seq & SEQ_MASK);
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
