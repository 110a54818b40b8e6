package dev.torus.comm;

import dev.torus.rendezvous.JobSecret;
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
 * runs/&lt;run&gt;/&lt;name&gt;/gen-&lt;g&gt;/&lt;what&gt;/&lt;rank&gt;   framed rank record, created once (see {@link #frame})
 * runs/&lt;run&gt;/&lt;name&gt;/gen-&lt;g&gt;/&lt;what&gt;-duplicate/&lt;rank&gt;  left by a second claimant of a rank
 * runs/&lt;run&gt;/&lt;name&gt;/gen-&lt;g&gt;/diag/&lt;seq&gt;/&lt;rank&gt;  failure report: fingerprint of the failed op
 * </pre>
 *
 * Records are framed binary (magic, version, generation, rank, size, payload length,
 * proof length, payload, proof) and checked field by field; nothing is deserialized
 * into objects. The proof is the HMAC-SHA256, under the job secret, of the run, the
 * communicator, the generation, the record's kind, rank and size, and the payload:
 * a process without the secret cannot write a record that the others accept, and a
 * record cannot be replayed into another run, generation, rank or exchange. A rank's
 * record is created once; a second claim of the same rank fails, leaves a
 * {@code -duplicate} marker, and every rank that sees the marker before its
 * generation is formed fails too, naming the rank.
 */
final class Rendezvous {
    static final int MAGIC = 0x54525341; // "TRSA"
    static final int VERSION = 2;
    static final int HEADER = 4 + 4 + 8 + 4 + 4 + 4 + 4;
    static final int MAC_BYTES = 32;

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
        String me = Integer.toString(spec.rank());
        byte[] mine = frame(spec, what, spec.rank(), payload);
        byte[] stored = ns.compareSet(me, null, mine);
        if (!Arrays.equals(stored, mine)) {
            reportDuplicate(spec, what);
            throw new DuplicateRankException(spec.rank(), "rank " + spec.rank() + " of " + spec + " was claimed twice: "
                    + "another process had already published its " + what + " record at key '" + key(spec, what, spec.rank())
                    + "' (two workers started with RANK=" + spec.rank() + ", two launchers sharing run id '" + spec.runId()
                    + "', or a reused run id whose keys remain); refusing to overwrite it");
        }
        List<String> keys = new ArrayList<>();
        for (int r = 0; r < spec.size(); r++) {
            keys.add(Integer.toString(r));
        }
        ns.wait(keys, remaining(deadlineNanos));
        byte[][] out = new byte[spec.size()][];
        for (int r = 0; r < spec.size(); r++) {
            out[r] = unframe(spec, what, r, ns.get(Integer.toString(r), remaining(deadlineNanos)), key(spec, what, r));
        }
        checkNoDuplicates(spec, what);
        return out;
    }

    private static String key(CommSpec spec, String what, int rank) {
        return "runs/" + spec.runId() + "/" + spec.name() + "/gen-" + spec.generation() + "/" + what + "/" + rank;
    }

    /** Best effort: tells the ranks of this generation that {@code spec.rank()} was claimed twice. */
    private static void reportDuplicate(CommSpec spec, String what) {
        try {
            spec.generationNamespace().set(what + "-duplicate/" + spec.rank(), frame(spec, what + "-duplicate",
                    spec.rank(), FailureDiagnosis.processId().getBytes(StandardCharsets.US_ASCII)));
        } catch (RuntimeException e) {
            // the claimant fails either way; the others may then form the generation without it
        }
    }

    /**
     * Fails, naming the ranks, if a second claimant of any rank has left its marker: called
     * after the exchange and again once the transport is connected, so that a duplicate
     * arriving while the generation forms fails every rank, not only itself.
     */
    static void checkNoDuplicates(CommSpec spec, String what) {
        Store ns = spec.generationNamespace();
        List<String> dups = ns.list(what + "-duplicate");
        if (!dups.isEmpty()) {
            List<String> ranks = dups.stream().filter(k -> k.matches("[0-9]{1,9}")).toList();
            for (String r : ranks) {
                // a marker must carry the job's proof too: a forged one is an attack, not a duplicate
                byte[] m = ns.tryGet(what + "-duplicate/" + r);
                if (m != null) {
                    unframe(spec, what + "-duplicate", Integer.parseInt(r), m, key(spec, what + "-duplicate",
                            Integer.parseInt(r)));
                }
            }
            if (ranks.isEmpty()) {
                return; // nothing Torus writes; not a duplicate claim
            }
            int first = Integer.parseInt(ranks.get(0));
            throw new DuplicateRankException(first, "rank(s) " + ranks + " of " + spec + " were claimed by more than one "
                    + "process (two workers with the same RANK, or two launchers sharing run id '" + spec.runId()
                    + "'); this generation cannot form");
        }
    }

    private static String initBound(CommSpec spec) {
        return "initTimeout (" + spec.initTimeout().toMillis() + " ms)";
    }

    /** What is left until {@code deadlineNanos}, at least 1 ms (a store wait needs a positive bound). */
    static Duration remaining(long deadlineNanos) {
        return Duration.ofNanos(Math.max(1_000_000L, deadlineNanos - System.nanoTime()));
    }

    static byte[] frame(CommSpec spec, String what, int rank, byte[] payload) {
        byte[] mac = spec.secret() == null ? new byte[0] : proof(spec, what, rank, payload);
        ByteBuffer b = ByteBuffer.allocate(HEADER + payload.length + mac.length).order(ByteOrder.BIG_ENDIAN);
        b.putInt(MAGIC).putInt(VERSION).putLong(spec.generation()).putInt(rank).putInt(spec.size()).putInt(payload.length)
                .putInt(mac.length).put(payload).put(mac);
        return b.array();
    }

    private static byte[] proof(CommSpec spec, String what, int rank, byte[] payload) {
        return spec.secret().mac(proofParts(spec, what, rank, payload));
    }

    static byte[] unframe(CommSpec spec, String what, int rank, byte[] rec, String key) {
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
        int macLen = b.getInt();
        if (magic != MAGIC || version != VERSION) {
            throw new CommException("malformed " + where + ": bad magic/version " + Integer.toHexString(magic) + "/"
                    + version + " (expected " + Integer.toHexString(MAGIC) + "/" + VERSION + ")");
        }
        if (gen != spec.generation()) {
            throw new StaleGenerationException(where + " belongs to generation " + gen + ", expected "
                    + spec.generation());
        }
        if (r != rank || size != spec.size()) {
            throw new CommException("malformed " + where + ": it claims rank " + r + " of " + size + ", expected rank "
                    + rank + " of " + spec.size());
        }
        if (len < 0 || macLen < 0 || (long) len + macLen != rec.length - HEADER) {
            throw new CommException("malformed " + where + ": payload length " + len + " and proof length " + macLen
                    + " but " + (rec.length - HEADER) + " bytes follow the header");
        }
        byte[] payload = Arrays.copyOfRange(rec, HEADER, HEADER + len);
        byte[] mac = Arrays.copyOfRange(rec, HEADER + len, rec.length);
        if (spec.secret() == null) {
            if (macLen != 0) {
                throw new CommSecurityException(rank, "the " + where + " of rank " + rank + " carries a proof of a job "
                        + "secret, but this process (rank " + spec.rank() + ") has none: set " + JobSecret.ENV
                        + " as for the other ranks");
            }
        } else if (macLen != MAC_BYTES || !spec.secret().verify(mac, proofParts(spec, what, rank, payload))) {
            throw new CommSecurityException(rank, "rank " + rank + " was not admitted: its " + where + " carries "
                    + (macLen == 0 ? "no proof" : "no valid proof") + " of this job's secret (" + spec.secret()
                    + "); it was written by a process without the secret or with another one");
        }
        return payload;
    }

    private static byte[][] proofParts(CommSpec spec, String what, int rank, byte[] payload) {
        return new byte[][] {"torus-rank-record".getBytes(StandardCharsets.US_ASCII),
                spec.runId().getBytes(StandardCharsets.UTF_8), spec.name().getBytes(StandardCharsets.UTF_8),
                ascii(spec.generation()), what.getBytes(StandardCharsets.US_ASCII), ascii(rank), ascii(spec.size()),
                payload};
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
