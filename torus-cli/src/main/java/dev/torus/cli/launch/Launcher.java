package dev.torus.cli.launch;

import dev.torus.zookeeper.EmbeddedZooKeeper;
import dev.torus.rendezvous.JobSecret;
import dev.torus.rendezvous.Store;
import dev.torus.zookeeper.ZooKeeperStore;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The agent behind {@code torusrun}: one per node. It meets the other nodes'
 * agents (when more than one node is allowed), starts this node's workers with
 * {@code RANK}, {@code LOCAL_RANK}, {@code WORLD_SIZE}, {@code LOCAL_WORLD_SIZE},
 * {@code GROUP_RANK}, {@code TORUS_RDZV_ENDPOINT}, {@code TORUS_RUN_ID} and
 * {@code TORUS_RESTART_COUNT} set, forwards their output, and watches them.
 *
 * <p>When a worker fails, the agent writes one JSON error file per failed worker
 * (rank, exit code, time, pid, command, last stderr lines), stops the other workers
 * and, while restarts remain, starts the whole job again under a new attempt
 * number (other nodes learn of it through the store). Otherwise {@link #run()}
 * returns the failed worker's exit code.
 *
 * <p>Security and hygiene: the job's {@link JobSecret} (given, or made fresh for a
 * one-node job) reaches the workers only through their environment
 * ({@value JobSecret#ENV}); the embedded server requires authentication and the
 * job's keys carry its ACL. Each worker gets {@value LauncherLink#PID_ENV} and a
 * heartbeat file, so it dies with the launcher, and a worker that is stopped or
 * sends no heartbeat for {@link #stuckTimeout} is treated as failed. Error files go
 * to a private per-user directory by default and never through a link. The run's
 * keys are deleted from an external ensemble when the job ends.
 *
 * <p>{@link #shutdown()} (called from a shutdown hook on Ctrl-C) stops every worker
 * and its child processes. The launcher owns the embedded ZooKeeper server it
 * starts and the workers; it borrows nothing.
 */
public final class Launcher {
    /** Receives every line a worker writes, tagged with its global rank. Called from pump threads. */
    public interface OutputSink {
        void line(int rank, boolean stderr, String line);
    }

    /**
     * Runs the workers (as {@link #run()}) with a JVM shutdown hook that stops them if this process is told to
     * end (Ctrl-C, SIGTERM), removed once they are done.
     */
    public int runStoppingOnExit(String hookName) throws IOException, InterruptedException {
        Thread hook = new Thread(this::shutdown, hookName);
        Runtime.getRuntime().addShutdownHook(hook);
        try {
            return run();
        } finally {
            try {
                Runtime.getRuntime().removeShutdownHook(hook);
            } catch (IllegalStateException e) {
                // shutting down already
            }
        }
    }

    /**
     * A log for drivers that keep the launcher quiet: it passes on to {@code err} only the lines that explain a
     * failure (a worker's exit code, its error file, a stuck worker, giving up), not the start-up chatter.
     */
    public static PrintStream failuresOnly(PrintStream err) {
        return new PrintStream(java.io.OutputStream.nullOutputStream()) {
            @Override
            public void println(String s) {
                if (s != null && (s.contains("exited with code") || s.contains("error file") || s.contains("giving up")
                        || s.contains("stuck") || s.contains("torusrun:   ["))) {
                    err.println(s);
                }
            }
        };
    }

    /** Prefixes each line with {@code [rank]} and writes it to {@code out} (stdout lines) or {@code err}. */
    public static OutputSink prefixing(PrintStream out, PrintStream err) {
        return (rank, stderr, line) -> {
            PrintStream p = stderr ? err : out;
            synchronized (p) {
                p.println("[" + rank + "] " + line);
            }
        };
    }

    /**
     * {@code java <jvmArgs> -cp <this JVM's classpath> mainClass args}, with this JVM's
     * own java binary: how the launcher, the demo and the benchmarks start Java workers.
     */
    public static List<String> javaCommand(List<String> jvmArgs, String mainClass, List<String> args) {
        List<String> cmd = new ArrayList<>();
        cmd.add(java.nio.file.Path.of(System.getProperty("java.home"), "bin", "java").toString());
        cmd.addAll(jvmArgs);
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add(WorkerMain.class.getName()); // starts the launcher watch, then runs mainClass
        cmd.add(mainClass);
        cmd.addAll(args);
        return cmd;
    }

    private static final long POLL_MILLIS = 50;
    private static final long GRACE_MILLIS = 5000;

    private final LaunchSpec spec;
    private final OutputSink sink;
    private final PrintStream log;
    private final List<WorkerProcess> workers = new ArrayList<>();
    private EmbeddedZooKeeper embedded;
    private Store store;
    private String runId;
    private volatile boolean stopping;
    private final List<Path> errorFiles = new ArrayList<>();
    private JobSecret secret;
    private Duration stuckTimeout = Duration.ofSeconds(30);
    private Path heartbeatDir;
    private volatile int attempts;
    private int nodesOfLastAttempt = 1;
    private boolean keysRemoved;
    private final String indexMarker = RunIndex.markerName();
    private StoreDuties duties;
    private Duration staleRunAge = Duration.ofHours(24);

    public Launcher(LaunchSpec spec, OutputSink sink, PrintStream log) {
        if (spec == null || sink == null || log == null) {
            throw new IllegalArgumentException("spec, sink and log must not be null");
        }
        this.spec = spec;
        this.sink = sink;
        this.log = log;
    }

    /**
     * The secret every node of the job shares (from {@value JobSecret#ENV} or a file, by
     * torusrun); a job of one node without one gets a fresh one. Set before {@link #run()}.
     */
    public synchronized Launcher jobSecret(JobSecret secret) {
        if (secret == null) {
            throw new IllegalArgumentException("secret must not be null");
        }
        this.secret = secret;
        return this;
    }

    /**
     * A worker stopped by a signal, or whose heartbeat file is older than this, counts as
     * failed (default 30 s); zero turns the check off.
     */
    public synchronized Launcher stuckTimeout(Duration timeout) {
        if (timeout == null || timeout.isNegative() || (!timeout.isZero() && timeout.compareTo(Duration.ofSeconds(2)) < 0)) {
            throw new IllegalArgumentException("--stuck-timeout must be 0 (off) or at least 2 seconds (workers beat every "
                    + LauncherLink.PERIOD_MILLIS + " ms), got " + timeout);
        }
        this.stuckTimeout = timeout;
        return this;
    }

    /**
     * On an external ensemble, runs of this launcher's secret with no live launcher and no
     * write for this long are deleted when a launcher starts (default 24 h).
     */
    public synchronized Launcher staleRunAge(Duration age) {
        if (age == null || age.isNegative() || age.isZero()) {
            throw new IllegalArgumentException("--stale-run-age must be positive, got " + age);
        }
        this.staleRunAge = age;
        return this;
    }

    /** The run id in use (generated when the spec has none); null before {@link #run()}. */
    public synchronized String runId() {
        return runId;
    }

    /** Error files written so far. */
    public synchronized List<Path> errorFiles() {
        return List.copyOf(errorFiles);
    }

    /** Runs the job to the end; returns 0, or the exit code of the worker whose failure ended it. */
    public int run() throws IOException, InterruptedException {
        String endpoint;
        synchronized (this) {
            runId = spec.runId() != null ? spec.runId()
                    : "run-" + ProcessHandle.current().pid() + "-" + Long.toString(System.currentTimeMillis(), 36) + "-"
                    + Integer.toHexString(new java.security.SecureRandom().nextInt() >>> 8);
            if (secret == null) {
                if (spec.maxNodes() > 1) {
                    throw new IllegalArgumentException("a job of more than one node needs a secret shared by every node: set "
                            + JobSecret.ENV + " (64 hex digits, e.g. from 'openssl rand -hex 32') in every agent's "
                            + "environment, or pass --secret-file");
                }
                secret = JobSecret.generate();
            }
            if (spec.endpoint() == null) {
                embedded = EmbeddedZooKeeper.start();
                endpoint = embedded.connectString();
                // create the shared parents and the run's node with their ACLs before anyone else can
                try (ZooKeeperStore first = ZooKeeperStore.builder(endpoint).root("store").jobSecret(secret).build()) {
                    first.set("runs/" + runId + "/agents/launcher",
                            Long.toString(ProcessHandle.current().pid()).getBytes(StandardCharsets.US_ASCII));
                }
                log.println("torusrun: started an embedded ZooKeeper at " + endpoint);
            } else {
                endpoint = spec.endpoint();
            }
            if (spec.endpoint() != null) {
                // an external ensemble: the agents meet there, and the run is indexed under the secret
                ZooKeeperStore zs = ZooKeeperStore.builder(endpoint).root("store").connectTimeout(spec.rdzvTimeout())
                        .jobSecret(secret).build();
                store = zs;
                try {
                    RunIndex.sweep(zs, secret, staleRunAge, runId, log);
                } catch (RuntimeException e) {
                    log.println("torusrun: could not sweep stale runs: " + e.getMessage());
                }
                if (spec.maxNodes() == 1) {
                    claimRunId(zs);
                }
                RunIndex.register(zs, secret, runId, 1, indexMarker);
                duties = new StoreDuties(zs, spec.maxNodes() > 1,
                        () -> RunIndex.register(zs, secret, runId, Math.max(1, attempts), indexMarker), log);
            }
        }
        try {
            for (int attempt = 0; ; attempt++) {
                int[] node = spec.maxNodes() == 1 ? new int[] {0, 1} : NodeRendezvous.join(store, runId, attempt,
                        spec.minNodes(), spec.maxNodes(), spec.rdzvTimeout(), spec.lastCall(), log);
                attempts = attempt + 1;
                nodesOfLastAttempt = node[1];
                if (store instanceof ZooKeeperStore zs && attempt > 0) {
                    RunIndex.register(zs, secret, runId, attempts, indexMarker);
                }
                int code = runAttempt(endpoint, attempt, node[0], node[1]);
                if (code == 0 || stopping) {
                    return code;
                }
                if (attempt >= spec.maxRestarts()) {
                    log.println("torusrun: giving up after " + (attempt + 1) + " attempt(s); exit code " + code);
                    return code;
                }
                log.println("torusrun: restarting the job (restart " + (attempt + 1) + " of " + spec.maxRestarts() + ")");
            }
        } finally {
            shutdown();
        }
    }

    /**
     * A one-node job owns its run id alone: another live launcher of this secret with the
     * same id is refused (instead of both failing, or the late one deleting the running
     * job's keys), and keys a dead launcher left under the id are removed first.
     */
    private void claimRunId(ZooKeeperStore zs) {
        if (RunIndex.liveLaunchers(zs, secret, runId, indexMarker) > 0) {
            throw new IllegalStateException("run id '" + runId + "' is in use by another live launcher on "
                    + zs.connectString() + "; pick another --run-id (or leave it out for a fresh one)");
        }
        if (zs.tryGet("runs/" + runId + "/agents/launcher") != null || !zs.list("runs/" + runId).isEmpty()) {
            int old = RunIndex.attempts(zs, secret, runId);
            for (int a = 0; a < old; a++) {
                zs.delete("runs/" + (a == 0 ? runId : runId + "-restart" + a));
            }
            log.println("torusrun: removed the keys an earlier, ended launcher left under run id " + runId);
        }
        zs.set("runs/" + runId + "/agents/launcher",
                Long.toString(ProcessHandle.current().pid()).getBytes(StandardCharsets.US_ASCII));
    }

    /**
     * Deletes the run's keys from an external ensemble once the job is over: at once for a
     * one-node job; in a larger one, the last node to finish does it. (The embedded server
     * takes everything with it.) Failures are reported, not thrown.
     */
    private void removeRunKeys() {
        if (!(store instanceof ZooKeeperStore zs) || attempts == 0 || keysRemoved) {
            return;
        }
        keysRemoved = true;
        if (duties != null) {
            duties.bounded(() -> {
                removeRunKeys(zs);
                return null;
            }, 15_000, "remove the keys of run " + runId);
        } else {
            removeRunKeys(zs);
        }
    }

    private void removeRunKeys(ZooKeeperStore zs) {
        try {
            if (spec.maxNodes() > 1 && zs.add("runs/" + runId + "/agents/finished-nodes", 1) < nodesOfLastAttempt) {
                return;
            }
            for (int a = 0; a < attempts; a++) {
                zs.delete("runs/" + (a == 0 ? runId : runId + "-restart" + a));
            }
            RunIndex.remove(zs, secret, runId);
            log.println("torusrun: removed the keys of run " + runId + " from " + zs.connectString());
        } catch (dev.torus.rendezvous.StoreAuthException e) {
            log.println("torusrun: left the keys of run " + runId + " alone: " + e.getMessage());
        } catch (RuntimeException e) {
            log.println("torusrun: could not remove the keys of run " + runId + " from " + zs.connectString() + ": "
                    + e.getMessage() + " (the next launcher with this secret sweeps it after " + staleRunAge.toHours()
                    + " h)");
        }
    }

    private int runAttempt(String endpoint, int attempt, int nodeRank, int nodes) throws IOException, InterruptedException {
        int n = spec.nprocPerNode();
        int world = n * nodes;
        synchronized (this) {
            if (stopping) {
                return 130;
            }
            workers.clear();
            removeHeartbeatDir();
            try {
                Path mine = PrivateFiles.userDirectory();
                PrivateFiles.sweepHeartbeatDirs(mine);
                heartbeatDir = PrivateFiles.ensurePrivate(mine.resolve("hb-" + ProcessHandle.current().pid() + "-" + runId
                        + "-" + attempt));
            } catch (IOException e) {
                // another user may own that name in a shared temp directory: do not let that stop the job
                heartbeatDir = Files.createTempDirectory("torusrun-hb-" + ProcessHandle.current().pid() + "-");
                log.println("torusrun: " + e.getMessage() + "; heartbeats go to " + heartbeatDir + " instead");
            }
            for (int local = 0; local < n; local++) {
                int rank = nodeRank * n + local;
                Map<String, String> env = new HashMap<>(spec.extraEnv());
                env.put("RANK", Integer.toString(rank));
                env.put("LOCAL_RANK", Integer.toString(local));
                env.put("WORLD_SIZE", Integer.toString(world));
                env.put("LOCAL_WORLD_SIZE", Integer.toString(n));
                env.put("GROUP_RANK", Integer.toString(nodeRank));
                env.put("TORUS_RDZV_ENDPOINT", endpoint);
                env.put("TORUS_RUN_ID", runId);
                env.put("TORUS_RESTART_COUNT", Integer.toString(attempt));
                env.put("TORUS_MAX_RESTARTS", Integer.toString(spec.maxRestarts()));
                // the secret travels only in the environment: never on a command line, never in a log
                env.put(JobSecret.ENV, secret.toHex());
                env.put(LauncherLink.PID_ENV, Long.toString(ProcessHandle.current().pid()));
                env.put(LauncherLink.HEARTBEAT_ENV, heartbeatDir.resolve("rank-" + rank).toString());
                WorkerProcess w = new WorkerProcess(rank, local, spec.command(), env, sink);
                workers.add(w);
                log.println("torusrun: started rank " + rank + " (local " + local + ") pid " + w.pid() + ", world size "
                        + world + ", run " + runId + ", attempt " + attempt);
            }
        }
        if (duties != null) {
            duties.watchAttempt("runs/" + runId + "/agents/attempt-" + attempt + "/failed");
        }
        while (true) {
            if (stopping) {
                return 130; // the workers' exits are our own doing (Ctrl-C, SIGTERM): no failure to report
            }
            List<WorkerProcess> failed = new ArrayList<>();
            Map<WorkerProcess, String> stuck = new LinkedHashMap<>();
            boolean allDone = true;
            for (WorkerProcess w : workers) {
                Integer code = w.exitCode();
                if (code == null) {
                    allDone = false;
                    String why = stuckTimeout.isZero() ? null
                            : w.stuckReason(stuckTimeout, heartbeatDir.resolve("rank-" + w.rank));
                    if (why != null) {
                        stuck.put(w, why);
                    }
                } else if (code != 0) {
                    failed.add(w);
                }
            }
            for (Map.Entry<WorkerProcess, String> e : stuck.entrySet()) {
                log.println("torusrun: rank " + e.getKey().rank + " (pid " + e.getKey().pid() + ") is stuck: "
                        + e.getValue() + "; killing it");
                e.getKey().kill();
                failed.add(e.getKey());
            }
            if (!failed.isEmpty()) {
                for (WorkerProcess w : failed) {
                    w.drainOutput(1000);
                    writeErrorFile(w, attempt, stuck.get(w));
                }
                if (duties != null) {
                    duties.reportFailure(failed.get(0).rank, 5_000);
                }
                stopWorkers();
                return failed.get(0).exitCode();
            }
            if (allDone) {
                for (WorkerProcess w : workers) {
                    w.drainOutput(1000);
                }
                return 0;
            }
            Integer other = duties == null ? null : duties.otherNodeFailed();
            if (other != null) {
                log.println("torusrun: " + (other >= 0 ? "rank " + other : "a rank") + " failed on another node; stopping "
                        + "this node's workers");
                stopWorkers();
                return 1;
            }
            if (stopping) {
                return 130;
            }
            Thread.sleep(POLL_MILLIS);
        }
    }

    private void writeErrorFile(WorkerProcess w, int attempt, String stuckReason) throws IOException {
        Path f = errorFileWriter().write(w, runId, attempt, stuckReason, spec.command());
        synchronized (this) {
            errorFiles.add(f);
        }
    }

    private ErrorFiles errorFileWriter;

    private synchronized ErrorFiles errorFileWriter() {
        if (errorFileWriter == null) {
            errorFileWriter = new ErrorFiles(spec.errorDir(), log);
        }
        return errorFileWriter;
    }

    private void stopWorkers() {
        List<WorkerProcess> ws;
        synchronized (this) {
            ws = List.copyOf(workers);
        }
        List<Thread> stoppers = new ArrayList<>();
        for (WorkerProcess w : ws) {
            if (w.isAlive()) {
                Thread t = new Thread(() -> w.stop(GRACE_MILLIS), "torusrun-stop-" + w.rank);
                t.start();
                stoppers.add(t);
            }
        }
        for (Thread t : stoppers) {
            try {
                t.join(GRACE_MILLIS + 10_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    /**
     * Stops every worker (and its children) and the embedded server. Idempotent;
     * safe from a shutdown hook.
     */
    public void shutdown() {
        stopping = true;
        stopWorkers();
        synchronized (this) {
            if (store != null) {
                removeRunKeys();
                if (duties != null) {
                    duties.close();
                    duties = null;
                }
                store.close();
                store = null;
            }
            if (embedded != null) {
                embedded.close();
                embedded = null;
            }
            removeHeartbeatDir();
        }
    }

    private synchronized void removeHeartbeatDir() {
        if (heartbeatDir == null) {
            return;
        }
        try {
            PrivateFiles.deleteFlat(heartbeatDir);
        } catch (IOException e) {
            // a private temp directory left behind is harmless
        }
        heartbeatDir = null;
    }
}
