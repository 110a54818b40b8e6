package dev.torus.comm;

import dev.torus.rendezvous.Store;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The store protocol every backend uses to form one generation of a communicator.
 *
 * <pre>
 * runs/&lt;run&gt;/&lt;name&gt;/generation              current generation (ASCII decimal), only ever raised
 * runs/&lt;run&gt;/&lt;name&gt;/gen-&lt;g&gt;/members        member ids in rank order (ASCII, comma-separated)
 * runs/&lt;run&gt;/&lt;name&gt;/gen-&lt;g&gt;/addr/&lt;rank&gt;    framed connection record (see {@link #frame})
 * runs/&lt;run&gt;/&lt;name&gt;/gen-&lt;g&gt;/diag/&lt;seq&gt;/&lt;rank&gt;  failure report: fingerprint of the failed op
 * </pre>
 *
 * Records are framed binary (magic, version, generation, rank, size, length) and
 * checked field by field; nothing is deserialized into objects.
 */
final class Rendezvous {
    static final int MAGIC = 0x54525341; // "TRSA"
    static final int HEADER = 4 + 4 + 8 + 4 + 4 + 4;

    private Rendezvous() {}

    /** Raises the run's generation of this communicator to {@code spec.generation()}, or fails if it is past it. */
    static void claimGeneration(CommSpec spec, long deadlineNanos) {
        BoundedCalls.within(() -> {
            claimGeneration(spec);
            return null;
        }, deadlineNanos, "claiming generation " + spec.generation() + " of " + spec.name(), initBound(spec));
    }

    private static void claimGeneration(CommSpec spec) {
        Store ns = spec.namespace();
        long g = spec.generation();
        byte[] want = ascii(g);
        for (int attempt = 0; attempt < 1000; attempt++) {
            byte[] cur = ns.tryGet("generation");
            if (cur == null) {
                if (Arrays.equals(ns.compareSet("generation", null, want), want)) {
                    return;
                }
                continue;
            }
            long c = parseLong(cur, "runs/" + spec.runId() + "/" + spec.name() + "/generation");
            if (c == g) {
                return;
            }
            if (c > g) {
                throw new StaleGenerationException("generation " + g + " of " + spec.name() + " in run '" + spec.runId()
                        + "' is stale: the run is at generation " + c + "; rejoin through the current generation");
            }
            if (Arrays.equals(ns.compareSet("generation", cur, want), want)) {
                return;
            }
        }
        throw new CommException("could not claim generation " + g + " of " + spec.name() + ": too much contention");
    }

    /** Fails with {@link StaleGenerationException} if the run has moved past this generation. */
    static void checkCurrent(CommSpec spec, long deadlineNanos) {
        BoundedCalls.within(() -> {
            checkCurrent(spec);
            return null;
        }, deadlineNanos, "checking that generation " + spec.generation() + " of " + spec.name() + " is current",
                initBound(spec));
    }

    private static void checkCurrent(CommSpec spec) {
        byte[] cur = spec.namespace().tryGet("generation");
        long c = cur == null ? -1 : parseLong(cur, "runs/" + spec.runId() + "/" + spec.name() + "/generation");
        if (c != spec.generation()) {
            throw new StaleGenerationException("generation " + spec.generation() + " of " + spec.name() + " in run '"
                    + spec.runId() + "' is no longer current (the store says " + c + ")");
        }
    }

    /** Records the member list of this generation, or checks it against the one already recorded. */
    static void agreeOnMembers(CommSpec spec, long deadlineNanos) {
        BoundedCalls.within(() -> {
            agreeOnMembers(spec);
            return null;
        }, deadlineNanos, "recording the members of generation " + spec.generation() + " of " + spec.name(),
                initBound(spec));
    }

    private static void agreeOnMembers(CommSpec spec) {
        byte[] mine = members(spec.members());
        byte[] stored = spec.generationNamespace().compareSet("members", null, mine);
        if (!Arrays.equals(stored, mine)) {
            throw new StaleGenerationException("rank " + spec.rank() + " expected members "
                    + Arrays.toString(spec.members()) + " for generation " + spec.generation() + " of " + spec.name()
                    + ", but the store records " + new String(stored, StandardCharsets.US_ASCII)
                    + "; a member of another generation cannot join this one");
        }
    }

    /** Publishes this rank's payload and returns every rank's payload, after validating each frame. */
    static byte[][] exchange(CommSpec spec, String what, byte[] payload) {
        return exchange(spec, what, payload, System.nanoTime() + spec.initTimeout().toNanos());
    }

    /** {@link #exchange(CommSpec, String, byte[])} with every store call bounded by {@code deadlineNanos}. */
    static byte[][] exchange(CommSpec spec, String what, byte[] payload, long deadlineNanos) {
        // the store's own waits get what is left; the whole is also cut off at the deadline,
        // in case the client's retries run past it
        return BoundedCalls.within(() -> exchangeUnbounded(spec, what, payload, deadlineNanos),
                deadlineNanos + 200_000_000L, "the " + what + " exchange of " + spec, initBound(spec));
    }

    private static byte[][] exchangeUnbounded(CommSpec spec, String what, byte[] payload, long deadlineNanos) {
        Store ns = spec.generationNamespace().withPrefix(what);
        ns.set(Integer.toString(spec.rank()), frame(spec, spec.rank(), payload));
        List<String> keys = new ArrayList<>();
        for (int r = 0; r < spec.size(); r++) {
            keys.add(Integer.toString(r));
        }
        ns.wait(keys, remaining(deadlineNanos));
        byte[][] out = new byte[spec.size()][];
        for (int r = 0; r < spec.size(); r++) {
            String key = "runs/" + spec.runId() + "/" + spec.name() + "/gen-" + spec.generation() + "/" + what + "/" + r;
            out[r] = unframe(spec, r, ns.get(Integer.toString(r), remaining(deadlineNanos)), key);
        }
        return out;
    }

    private static String initBound(CommSpec spec) {
        return "initTimeout (" + spec.initTimeout().toMillis() + " ms)";
    }

    /** What is left until {@code deadlineNanos}, at least 1 ms (a store wait needs a positive bound). */
    static Duration remaining(long deadlineNanos) {
        return Duration.ofNanos(Math.max(1_000_000L, deadlineNanos - System.nanoTime()));
    }

    static byte[] frame(CommSpec spec, int rank, byte[] payload) {
        ByteBuffer b = ByteBuffer.allocate(HEADER + payload.length).order(ByteOrder.BIG_ENDIAN);
        b.putInt(MAGIC).putInt(1).putLong(spec.generation()).putInt(rank).putInt(spec.size()).putInt(payload.length)
                .put(payload);
        return b.array();
    }

    static byte[] unframe(CommSpec spec, int rank, byte[] rec, String key) {
        String where = "record at key '" + key + "'";
        if (rec.length < HEADER) {
            throw new CommException("malformed " + where + ": " + rec.length + " bytes, shorter than the "
                    + HEADER + "-byte header");
        }
        ByteBuffer b = ByteBuffer.wrap(rec).order(ByteOrder.BIG_ENDIAN);
        int magic = b.getInt();
        int version = b.getInt();
        long gen = b.getLong();
        int r = b.getInt();
        int size = b.getInt();
        int len = b.getInt();
        if (magic != MAGIC || version != 1) {
            throw new CommException("malformed " + where + ": bad magic/version " + Integer.toHexString(magic) + "/"
                    + version);
        }
        if (gen != spec.generation()) {
            throw new StaleGenerationException(where + " belongs to generation " + gen + ", expected "
                    + spec.generation());
        }
        if (r != rank || size != spec.size()) {
            throw new CommException("malformed " + where + ": it claims rank " + r + " of " + size + ", expected rank "
                    + rank + " of " + spec.size());
        }
        if (len < 0 || len != rec.length - HEADER) {
            throw new CommException("malformed " + where + ": payload length " + len + " but " + (rec.length - HEADER)
                    + " bytes follow the header");
        }
        return Arrays.copyOfRange(rec, HEADER, rec.length);
    }

    static byte[] ascii(long v) {
        return Long.toString(v).getBytes(StandardCharsets.US_ASCII);
    }

    static byte[] members(int[] ids) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < ids.length; i++) {
            sb.append(i == 0 ? "" : ",").append(ids[i]);
        }
        return sb.toString().getBytes(StandardCharsets.US_ASCII);
    }

    static long parseLong(byte[] v, String key) {
        try {
            if (v.length == 0 || v.length > 20) {
                throw new NumberFormatException();
            }
            return Long.parseLong(new String(v, StandardCharsets.US_ASCII));
        } catch (NumberFormatException e) {
            throw new CommException("malformed value at key '" + key + "': expected an ASCII decimal number, got "
                    + v.length + " bytes");
        }
    }
}
