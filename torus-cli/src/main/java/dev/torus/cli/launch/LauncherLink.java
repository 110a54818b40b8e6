package dev.torus.cli.launch;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.FileTime;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The worker's side of {@code torusrun}'s supervision. When the launcher set
 * {@value #PID_ENV}, a daemon thread checks every {@value #PERIOD_MILLIS} ms that the
 * launcher still lives, and ends this JVM within about 3 s of its death (even by
 * SIGKILL): {@link System#exit} with code {@value #EXIT_CODE}, then a halt if shutdown
 * hooks hang. When {@value #HEARTBEAT_ENV} names a file, the same thread touches it, so
 * that the launcher can tell a stopped or frozen worker from a busy one.
 *
 * <p>Started by torusrun's Java worker entry point, {@link WorkerMain}, which runs main
 * classes and jars alike: ending the process is an application's decision, so it lives
 * here in the CLI, not in the library. Idempotent and a no-op outside torusrun. It owns
 * nothing that needs closing.
 */
public final class LauncherLink {
    /** The launcher's pid, set by torusrun in its workers' environment. */
    public static final String PID_ENV = "TORUS_LAUNCHER_PID";
    /** A file the worker touches while it runs, set by torusrun. */
    public static final String HEARTBEAT_ENV = "TORUS_HEARTBEAT_FILE";
    /** The exit code of a worker whose launcher died. */
    public static final int EXIT_CODE = 143;
    /** How often the watch checks the launcher and touches the heartbeat file. */
    public static final long PERIOD_MILLIS = 500;
    private static final long HALT_AFTER_MILLIS = 2_000;

    private static Thread watcher;

    private LauncherLink() {}

    /** Starts the watch described above if this process was started by torusrun; returns whether it runs. */
    public static synchronized boolean startFromEnvironment() {
        return start(System.getenv());
    }

    static synchronized boolean start(Map<String, String> env) {
        if (watcher != null) {
            return true;
        }
        String pidText = env.get(PID_ENV);
        if (pidText == null || pidText.isBlank()) {
            return false;
        }
        long pid;
        try {
            pid = Long.parseLong(pidText.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("environment variable " + PID_ENV + " must be the launcher's pid, got '"
                    + pidText + "'");
        }
        Optional<ProcessHandle> launcher = ProcessHandle.of(pid);
        String hb = env.get(HEARTBEAT_ENV);
        Path heartbeat = hb == null || hb.isBlank() ? null : Path.of(hb);
        Thread t = new Thread(() -> watch(pid, launcher.orElse(null), heartbeat), "torus-launcher-watch");
        t.setDaemon(true);
        t.start();
        watcher = t;
        return true;
    }

    private static void watch(long pid, ProcessHandle launcher, Path heartbeat) {
        while (true) {
            if (launcher == null || !launcher.isAlive()) {
                launcherGone(pid);
                return;
            }
            if (heartbeat != null) {
                touch(heartbeat);
            }
            try {
                Thread.sleep(PERIOD_MILLIS);
            } catch (InterruptedException e) {
                return;
            }
        }
    }

    private static void touch(Path f) {
        try {
            if (Files.exists(f, LinkOption.NOFOLLOW_LINKS)) {
                Files.setLastModifiedTime(f, FileTime.fromMillis(System.currentTimeMillis()));
            } else {
                Files.newOutputStream(f, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE,
                        LinkOption.NOFOLLOW_LINKS).close();
            }
        } catch (IOException | SecurityException e) {
            // the launcher's directory is gone (it is ending) or not ours: liveness still holds
        }
    }

    /**
     * A worker stopped by a signal cannot run its own watch, and with the launcher gone
     * nobody else would end it: each worker that notices the launcher's death kills the
     * stopped workers of the same launcher and run (found by their environment, which
     * only the same user can read). Best effort.
     */
    static int killStoppedSiblings(long launcherPid) {
        String mark = PID_ENV + "=" + launcherPid;
        String run = "TORUS_RUN_ID=" + System.getenv().getOrDefault("TORUS_RUN_ID", "");
        long self = ProcessHandle.current().pid();
        int killed = 0;
        try (java.util.stream.Stream<Path> procs = Files.list(Path.of("/proc"))) {
            for (Path p : procs.toList()) {
                String name = p.getFileName().toString();
                if (!name.matches("[0-9]+") || Long.parseLong(name) == self) {
                    continue;
                }
                try {
                    char state = WorkerProcess.procState(Long.parseLong(name));
                    if (state != 'T' && state != 't') {
                        continue;
                    }
                    List<String> env = java.util.Arrays.asList(new String(Files.readAllBytes(p.resolve("environ")),
                            java.nio.charset.StandardCharsets.UTF_8).split("\0"));
                    if (env.contains(mark) && env.contains(run)) {
                        Optional<ProcessHandle> h = ProcessHandle.of(Long.parseLong(name));
                        if (h.isPresent() && h.get().destroyForcibly()) {
                            killed++;
                        }
                    }
                } catch (IOException | RuntimeException gone) {
                    // exited meanwhile, or not ours to read
                }
            }
        } catch (IOException | RuntimeException e) {
            // no /proc: nothing more to do
        }
        return killed;
    }

    private static void launcherGone(long pid) {
        int killed = killStoppedSiblings(pid);
        if (killed > 0) {
            System.err.println("torus: killed " + killed + " stopped worker(s) of the same launcher");
        }
        System.err.println("torus: the launcher (pid " + pid + ") is gone; this worker (pid " + ProcessHandle.current().pid()
                + ") exits with code " + EXIT_CODE + " instead of running on as an orphan");
        System.err.flush();
        Thread halter = new Thread(() -> {
            try {
                Thread.sleep(HALT_AFTER_MILLIS);
            } catch (InterruptedException ignored) {
                // halt now
            }
            Runtime.getRuntime().halt(EXIT_CODE);
        }, "torus-launcher-watch-halt");
        halter.setDaemon(true);
        halter.start();
        Thread exiter = new Thread(() -> System.exit(EXIT_CODE), "torus-launcher-watch-exit");
        exiter.setDaemon(true);
        exiter.start();
    }
}
