package dev.torus.comm;

import dev.torus.rendezvous.Store;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.concurrent.Callable;

/**
 * Failure reports and mismatch probes through the store, for one generation of one
 * communicator. Every store call made here is bounded ({@link BoundedCalls}): it runs on
 * a daemon thread and is abandoned when its window closes, so a store that is down (or
 * slow) delays a failing operation by at most {@link #GRACE} plus
 * {@link #CALL_BOUND}, never by the store client's own retry schedule.
 *
 * <pre>
 * gen-&lt;g&gt;/diag/&lt;seq&gt;/&lt;rank&gt;   the op this rank ran at seq (Fingerprint#describe), when it failed or stalled
 * gen-&lt;g&gt;/proc/&lt;rank&gt;         "&lt;host id&gt; &lt;pid&gt;", published at creation, to tell dead ranks from silent ones
 * </pre>
 *
 * Thread-safe; owns nothing that needs closing.
 */
final class FailureDiagnosis {
    /** How long a failed rank waits for the others' failure reports. */
    static final Duration GRACE = Duration.ofMillis(500);
    /** Bound on any single store call made by a diagnosis or a probe. */
    static final Duration CALL_BOUND = Duration.ofMillis(500);

    /** This process's identity: its kernel (boot id) and pid namespace, so that pids are comparable. */
    static final String HOST_ID = hostId();
    static final long PID = ProcessHandle.current().pid();

    private final CommSpec spec;

    FailureDiagnosis(CommSpec spec) {
        this.spec = spec;
    }

    /** What a diagnosis found: text for the failure message, and the mismatch description if a peer ran another op. */
    record Finding(String text, String mismatch) {}

    /** "host-id pid" of this process, as the proc records carry it. */
    static String processId() {
        return HOST_ID + " " + PID;
    }

    /** Publishes this rank's host id and pid (once, at creation; bounded). */
    void publishIdentity() {
        String id = HOST_ID + " " + PID;
        bounded(() -> {
            spec.generationNamespace().set("proc/" + spec.rank(), id.getBytes(StandardCharsets.US_ASCII));
            return null;
        }, System.nanoTime() + CALL_BOUND.toNanos());
    }

    /**
     * After a failed collective: posts what this rank ran at {@code seq}, then reads the
     * others' posts for up to {@link #GRACE}. Ranks that post nothing are checked for
     * liveness (same host only); ranks that post a different op make it a mismatch.
     */
    Finding afterFailure(long seq, Fingerprint fp) {
        long deadline = System.nanoTime() + GRACE.toNanos();
        Store ns = spec.generationNamespace();
        String dir = "diag/" + seq;
        String mine = fp.describe();
        Optional<Boolean> posted = bounded(() -> {
            ns.set(dir + "/" + spec.rank(), mine.getBytes(StandardCharsets.UTF_8));
            return Boolean.TRUE;
        }, System.nanoTime() + CALL_BOUND.toNanos());
        if (posted.isEmpty()) {
            return new Finding(" [diagnosis unavailable: the store could not be reached (an error, or no answer "
                    + "within " + CALL_BOUND.toMillis() + " ms)]", null);
        }
        List<String> seen = List.of();
        while (true) {
            Optional<List<String>> l = bounded(() -> ns.list(dir), Math.min(deadline, System.nanoTime()
                    + CALL_BOUND.toNanos()));
            if (l.isPresent()) {
                seen = rankChildren(l.get());
            }
            if (seen.size() >= spec.size() || System.nanoTime() - deadline >= 0) {
                break;
            }
            sleep(20);
        }
        List<Integer> silent = new ArrayList<>();
        Map<Integer, String> different = new TreeMap<>();
        long readDeadline = System.nanoTime() + CALL_BOUND.toNanos();
        for (int r = 0; r < spec.size(); r++) {
            if (!seen.contains(Integer.toString(r))) {
                silent.add(r);
                continue;
            }
            String other = read(ns, dir + "/" + r, readDeadline);
            if (other != null && !other.equals(mine)) {
                different.put(r, other);
            }
        }
        StringBuilder sb = new StringBuilder();
        if (!silent.isEmpty()) {
            sb.append(" [missing rank(s) ").append(silent).append(": no failure report within ")
                    .append(GRACE.toMillis()).append(" ms;");
            for (int r : silent) {
                sb.append(" rank ").append(r).append(' ').append(liveness(ns, r, readDeadline)).append(';');
            }
            sb.setLength(sb.length() - 1);
            sb.append(']');
        }
        different.forEach((r, other) -> sb.append(" [rank ").append(r).append(" was in ").append(other)
                .append(" at this seq]"));
        return new Finding(sb.toString(), different.isEmpty() ? null : mismatchText(seq, mine, different));
    }

    /**
     * For a collective that has not finished yet: posts this rank's op at {@code seq}
     * (idempotently) and compares it with whatever the others have posted. Returns the
     * mismatch description, or null when no peer has posted a different op (yet).
     */
    String probe(long seq, Fingerprint fp) {
        long deadline = System.nanoTime() + CALL_BOUND.toNanos();
        Store ns = spec.generationNamespace();
        String dir = "diag/" + seq;
        String mine = fp.describe();
        bounded(() -> {
            ns.set(dir + "/" + spec.rank(), mine.getBytes(StandardCharsets.UTF_8));
            return null;
        }, deadline);
        Optional<List<String>> seen = bounded(() -> ns.list(dir), deadline);
        if (seen.isEmpty()) {
            return null;
        }
        Map<Integer, String> different = new TreeMap<>();
        for (String k : rankChildren(seen.get())) { // anything that is not a rank's report is ignored
            int r = Integer.parseInt(k);
            if (r == spec.rank()) {
                continue;
            }
            String other = read(ns, dir + "/" + k, deadline);
            if (other != null && !other.equals(mine)) {
                different.put(r, other);
            }
        }
        return different.isEmpty() ? null : mismatchText(seq, mine, different);
    }

    /** Deletes this rank's report for {@code seq} (after the op succeeded); bounded, best effort. */
    void retract(long seq) {
        bounded(() -> spec.generationNamespace().delete("diag/" + seq + "/" + spec.rank()),
                System.nanoTime() + CALL_BOUND.toNanos());
    }

    /** The children that name a rank of this communicator (anything else in the store is ignored). */
    private List<String> rankChildren(List<String> children) {
        List<String> out = new ArrayList<>();
        for (int r = 0; r < spec.size(); r++) {
            if (children.contains(Integer.toString(r))) {
                out.add(Integer.toString(r));
            }
        }
        return out;
    }

    private String mismatchText(long seq, String mine, Map<Integer, String> different) {
        StringBuilder sb = new StringBuilder("collective mismatch at seq " + seq + ": rank " + spec.rank()
                + " called " + mine);
        different.forEach((r, other) -> sb.append("; rank ").append(r).append(" called ").append(other));
        return sb.toString();
    }

    private String liveness(Store ns, int r, long deadline) {
        String rec = read(ns, "proc/" + r, deadline);
        String[] parts = rec == null ? new String[0] : rec.split(" ");
        if (parts.length != 2) {
            return "is dead, stalled, or not in this collective (its identity record is unreadable)";
        }
        long pid;
        try {
            pid = Long.parseLong(parts[1]);
        } catch (NumberFormatException e) {
            return "is dead, stalled, or not in this collective (its identity record is malformed)";
        }
        if (!parts[0].equals(HOST_ID) || HOST_ID.startsWith("unknown")) {
            return "is dead, stalled, or not in this collective (pid " + pid + " on another host)";
        }
        boolean alive = ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false);
        return alive ? "is alive (pid " + pid + "): it has not reached this collective or is blocked elsewhere"
                : "is dead (pid " + pid + " has exited)";
    }

    /**
     * A peer's record, as printable text of at most {@link #MAX_REPORT_CHARS} characters:
     * whatever is in the store ends up in exception messages, so it is never copied raw.
     */
    private static String read(Store ns, String key, long deadline) {
        return bounded(() -> ns.tryGet(key), deadline).map(FailureDiagnosis::printable).orElse(null);
    }

    static final int MAX_REPORT_CHARS = 200;

    static String printable(byte[] v) {
        String s = new String(v, StandardCharsets.UTF_8);
        StringBuilder sb = new StringBuilder(Math.min(s.length(), MAX_REPORT_CHARS));
        for (int i = 0; i < s.length() && sb.length() < MAX_REPORT_CHARS; i++) {
            char c = s.charAt(i);
            sb.append(c >= 0x20 && c < 0x7f ? c : '?');
        }
        if (s.length() > MAX_REPORT_CHARS) {
            sb.append("...");
        }
        return sb.toString();
    }

    /** Runs {@code task} on a store-call thread without waiting for it. */
    static void async(Runnable task) {
        BoundedCalls.async(task);
    }

    /** Runs {@code call} on a store-call thread; empty if it fails or has not returned by {@code deadlineNanos}. */
    static <T> Optional<T> bounded(Callable<T> call, long deadlineNanos) {
        return BoundedCalls.attempt(call, deadlineNanos);
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private static String hostId() {
        try {
            String boot = Files.readString(Path.of("/proc/sys/kernel/random/boot_id")).trim();
            String pidNs = Files.readSymbolicLink(Path.of("/proc/self/ns/pid")).toString();
            return (boot + "/" + pidNs).replace(' ', '_');
        } catch (IOException | UnsupportedOperationException | SecurityException e) {
            return "unknown-" + ProcessHandle.current().pid();
        }
    }
}
