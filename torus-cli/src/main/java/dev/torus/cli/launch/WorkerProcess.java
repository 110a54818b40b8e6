package dev.torus.cli.launch;

import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * One worker started by {@link Launcher}: the process, two threads that forward its
 * output line by line to the launcher's sink, and the last lines of its stderr for
 * the error file. Owned by the launcher, which stops it.
 */
final class WorkerProcess {
    static final int TAIL_LINES = 40;

    final int rank;
    final int localRank;
    private final Process process;
    private final ArrayDeque<String> stderrTail = new ArrayDeque<>();
    private final List<Thread> pumps = new ArrayList<>();

    WorkerProcess(int rank, int localRank, List<String> command, Map<String, String> env, Launcher.OutputSink sink)
            throws IOException {
        this.rank = rank;
        this.localRank = localRank;
        ProcessBuilder pb = new ProcessBuilder(command);
        pb.environment().putAll(env);
        this.process = pb.start();
        process.getOutputStream().close();
        pumps.add(pump(process.getInputStream(), false, sink));
        pumps.add(pump(process.getErrorStream(), true, sink));
    }

    /** Longest piece of a line forwarded at once; a longer line is split into pieces of this size. */
    static final int MAX_LINE_CHARS = 64 * 1024;
    /** Longest line kept in the stderr tail (for the error file); the rest is cut with a note. */
    static final int MAX_TAIL_LINE_CHARS = 2_000;

    private Thread pump(InputStream in, boolean stderr, Launcher.OutputSink sink) {
        Thread t = new Thread(() -> {
            try (java.io.Reader r = new InputStreamReader(in, StandardCharsets.UTF_8)) {
                // bounded lines: a worker that writes one endless line must not exhaust the launcher's memory
                StringBuilder line = new StringBuilder();
                char[] buf = new char[8192];
                int n;
                while ((n = r.read(buf)) >= 0) {
                    for (int i = 0; i < n; i++) {
                        char c = buf[i];
                        if (c == '\n') {
                            emit(line, stderr, sink);
                        } else if (c != '\r') {
                            line.append(c);
                            if (line.length() == MAX_LINE_CHARS) {
                                emit(line, stderr, sink);
                            }
                        }
                    }
                }
                if (line.length() > 0) {
                    emit(line, stderr, sink);
                }
            } catch (IOException e) {
                // the stream closes when the process dies: nothing more to forward
            }
        }, "torusrun-rank" + rank + (stderr ? "-err" : "-out"));
        t.setDaemon(true);
        t.start();
        return t;
    }

    private void emit(StringBuilder line, boolean stderr, Launcher.OutputSink sink) {
        String text = line.toString();
        line.setLength(0);
        if (stderr) {
            String kept = text.length() <= MAX_TAIL_LINE_CHARS ? text
                    : text.substring(0, MAX_TAIL_LINE_CHARS) + " ... (" + text.length() + " characters)";
            synchronized (stderrTail) {
                if (stderrTail.size() == TAIL_LINES) {
                    stderrTail.removeFirst();
                }
                stderrTail.addLast(kept);
            }
        }
        sink.line(rank, stderr, text);
    }

    long pid() {
        return process.pid();
    }

    boolean isAlive() {
        return process.isAlive();
    }

    /** The exit code, or null while running. */
    Integer exitCode() {
        return process.isAlive() ? null : process.exitValue();
    }

    private long stoppedSinceNanos = -1;
    private java.nio.file.attribute.FileTime lastBeat;
    private long lastBeatChangeNanos;

    /**
     * Why this running worker counts as stuck, or null: stopped by a signal (state T in
     * /proc) for longer than {@code bound}, or a heartbeat file (once the worker made
     * one) not touched for longer than {@code bound}.
     */
    String stuckReason(java.time.Duration bound, java.nio.file.Path heartbeat) {
        char state = procState();
        long now = System.nanoTime();
        if (state == 'T' || state == 't') {
            if (stoppedSinceNanos < 0) {
                stoppedSinceNanos = now;
            } else if (now - stoppedSinceNanos > bound.toNanos()) {
                return "stopped by a signal (process state " + state + ") for more than " + bound.toSeconds() + " s";
            }
            return null;
        }
        stoppedSinceNanos = -1;
        // the time is this launcher's monotonic clock since the file last changed, never the
        // file's wall-clock age: a clock step must not make every worker look frozen
        java.nio.file.attribute.FileTime beat;
        try {
            beat = java.nio.file.Files.getLastModifiedTime(heartbeat, java.nio.file.LinkOption.NOFOLLOW_LINKS);
        } catch (IOException noHeartbeat) {
            return null; // a worker that does not run the launcher watch (an --exec program) has none
        }
        if (!beat.equals(lastBeat)) {
            lastBeat = beat;
            lastBeatChangeNanos = now;
            return null;
        }
        long silent = now - lastBeatChangeNanos;
        if (silent > bound.toNanos()) {
            return "no heartbeat for " + silent / 1_000_000_000L + " s (bound " + bound.toSeconds() + " s): the JVM is frozen";
        }
        return null;
    }

    /** The state letter of /proc/<pid>/stat ('R', 'S', 'T', ...), or '?' when unreadable. */
    private char procState() {
        return procState(process.pid());
    }

    /** The state letter of process {@code pid} in /proc, or '?' when unreadable. */
    static char procState(long pid) {
        try {
            String stat = java.nio.file.Files.readString(java.nio.file.Path.of("/proc/" + pid + "/stat"));
            int close = stat.lastIndexOf(')'); // the command name may hold spaces and parentheses
            return close > 0 && close + 2 < stat.length() ? stat.charAt(close + 2) : '?';
        } catch (IOException | RuntimeException e) {
            return '?';
        }
    }

    /** Kills the worker and its children at once (SIGKILL works on a stopped process too). */
    void kill() {
        process.toHandle().descendants().forEach(ProcessHandle::destroyForcibly);
        process.destroyForcibly();
        try {
            process.waitFor(5, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Waits (bounded) for the output threads, so the tail holds the final lines. */
    void drainOutput(long millis) {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(millis);
        for (Thread t : pumps) {
            try {
                t.join(Math.max(1, TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime())));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }

    List<String> stderrTail() {
        synchronized (stderrTail) {
            return List.copyOf(stderrTail);
        }
    }

    /**
     * Stops the worker and everything it started: SIGTERM, then SIGKILL after
     * {@code graceMillis}. Returns once they are gone (or after the bound).
     */
    void stop(long graceMillis) {
        List<ProcessHandle> family = new ArrayList<>();
        process.toHandle().descendants().forEach(family::add);
        family.add(process.toHandle());
        for (ProcessHandle h : family) {
            h.destroy();
        }
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(graceMillis);
        for (ProcessHandle h : family) {
            long left = deadline - System.nanoTime();
            try {
                if (left > 0) {
                    h.onExit().get(left, TimeUnit.NANOSECONDS);
                }
            } catch (Exception e) {
                // still alive: killed below
            }
            if (h.isAlive()) {
                h.destroyForcibly();
            }
        }
        for (ProcessHandle h : family) {
            try {
                h.onExit().get(5, TimeUnit.SECONDS);
            } catch (Exception e) {
                // reported by the caller if it matters
            }
        }
    }
}
