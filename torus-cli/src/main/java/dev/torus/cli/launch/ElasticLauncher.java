package dev.torus.cli.launch;

import dev.torus.elastic.ElasticOptions;
import dev.torus.rendezvous.JobSecret;
import dev.torus.zookeeper.EmbeddedZooKeeper;
import dev.torus.zookeeper.ZooKeeperStore;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * {@code torusrun --elastic}: starts this node's workers of an elastic job and keeps them running
 * while other nodes come and go. Membership is the workers' own ({@code ElasticLoop.fromEnv}): a
 * launcher started later with the same run id, endpoint and secret adds its workers to the running
 * job at its next step boundary, and nobody restarts.
 *
 * <ul>
 *   <li>Each worker gets TORUS_RDZV_ENDPOINT, TORUS_RUN_ID, the job secret, LOCAL_RANK,
 *       LOCAL_WORLD_SIZE, and the world bounds MIN×nproc and MAX×nproc with the join timeout
 *       ({@link ElasticOptions#fromEnv}); not RANK or WORLD_SIZE, which change.</li>
 *   <li>A worker that fails gets an error file and is not restarted: the job goes on without it.
 *       Only when the job announces that it fell below its minimum (the survivors' {@code below-min}
 *       key) does this launcher start replacements for its failed workers; the survivors wait up to
 *       the join timeout for them and then fail.</li>
 *   <li>SIGTERM to the launcher is a graceful leave of its workers: they get SIGTERM, finish their
 *       step, leave at the next boundary and exit; they are killed if they take longer than the
 *       leave grace.</li>
 *   <li>Workers die with the launcher ({@link LauncherLink}), and stopped or silent ones are killed
 *       after the stuck timeout, as in the static launcher.</li>
 * </ul>
 *
 * Owns its workers, its store connection and (for a one-node job without an endpoint) the
 * embedded ZooKeeper; {@link #shutdown()} releases them.
 */
public final class ElasticLauncher {
    private static final long POLL_MILLIS = 50;
    private static final long LEAVE_GRACE_MILLIS = 30_000;
    /** Replacements one slot may get: a worker that fails at once every time must not loop forever. */
    private static final int MAX_REPLACEMENTS_PER_SLOT = 3;
    private static final long BELOW_MIN_POLL_NANOS = 250_000_000L;
    /** A worker stopped or silent this long counts as stuck while the job waits below its minimum. */
    private static final Duration BELOW_MIN_STUCK = Duration.ofSeconds(2);
    /** How long a node whose workers all failed waits for the job to ask for replacements. */
    private static final long LINGER_NANOS = 10_000_000_000L;

    private final LaunchSpec spec;
    private final Duration joinTimeout;
    private final JobSecret secret;
    private final Duration stuckTimeout;
    private final Launcher.OutputSink sink;
    private final PrintStream log;
    private final ErrorFiles errorFiles;
    private final List<Path> written = new ArrayList<>();
    private final WorkerProcess[] slots;
    private final int[] replacements;
    private final Integer[] finalCodes;
    private EmbeddedZooKeeper embedded;
    private ZooKeeperStore store;
    private Path heartbeatDir;
    private final Path[] beats;
    private volatile boolean stopping;
    private final java.util.concurrent.atomic.AtomicBoolean shutDown = new java.util.concurrent.atomic.AtomicBoolean();
    private int started;
    private String runId;
    private Path eventFile;

    /**
     * @param secret the job's secret; required when {@code spec} names an endpoint (other nodes must
     *     share it), generated otherwise
     */
    public ElasticLauncher(LaunchSpec spec, Duration joinTimeout, JobSecret secret, Duration stuckTimeout,
                           Launcher.OutputSink sink, PrintStream log) {
        if (spec.endpoint() != null && secret == null) {
            throw new IllegalArgumentException("an elastic job on --rdzv-endpoint needs a secret shared by every node: set "
                    + JobSecret.ENV + " (64 hex digits) in every agent's environment, or pass --secret-file");
        }
        if (spec.runId() == null && spec.endpoint() != null) {
            throw new IllegalArgumentException("--run-id is required with --elastic and --rdzv-endpoint: a launcher "
                    + "joins the running job of that id");
        }
        if (joinTimeout == null || joinTimeout.isNegative() || joinTimeout.isZero()) {
            throw new IllegalArgumentException("--join-timeout must be positive, got " + joinTimeout);
        }
        if ((long) spec.maxNodes() * spec.nprocPerNode() > 1 << 20) {
            throw new IllegalArgumentException("--nnodes MAX x --nproc-per-node must be at most " + (1 << 20)
                    + " workers, got " + spec.maxNodes() + " x " + spec.nprocPerNode());
        }
        if (spec.maxRestarts() != 0) {
            throw new IllegalArgumentException("--max-restarts does not apply to --elastic: a failed worker is replaced "
                    + "only when the job falls below its minimum");
        }
        this.spec = spec;
        this.joinTimeout = joinTimeout;
        this.secret = secret != null ? secret : JobSecret.generate();
        this.stuckTimeout = stuckTimeout;
        this.sink = sink;
        this.log = log;
        this.errorFiles = new ErrorFiles(spec.errorDir(), log);
        this.slots = new WorkerProcess[spec.nprocPerNode()];
        this.replacements = new int[spec.nprocPerNode()];
        this.finalCodes = new Integer[spec.nprocPerNode()];
        this.beats = new Path[spec.nprocPerNode()];
    }

    /**
     * Appends one JSON line per event of this node to {@code file}: {@code started}, {@code failed},
     * {@code replacement}, {@code stuck}, {@code leave} and {@code exited}, with the time, run id,
     * launcher pid, local rank, worker pid and (for an exit) the code. The workers' own events (each
     * membership change, with generations, world sizes and timings) come from {@code ElasticLoop}.
     */
    public synchronized ElasticLauncher events(Path file) {
        this.eventFile = file;
        return this;
    }

    private synchronized void event(String kind, int local, WorkerProcess w, Integer code) {
        if (eventFile == null) {
            return;
        }
        Map<String, Object> o = new java.util.LinkedHashMap<>();
        o.put("kind", kind);
        o.put("time", java.time.Instant.now().toString());
        o.put("run_id", runId);
        o.put("launcher_pid", ProcessHandle.current().pid());
        o.put("local_rank", local);
        o.put("pid", w == null ? -1 : w.pid());
        if (code != null) {
            o.put("exit_code", code);
        }
        try {
            Files.writeString(eventFile, dev.torus.cli.Json.write(o) + "\n", java.nio.file.StandardOpenOption.CREATE,
                    java.nio.file.StandardOpenOption.APPEND);
        } catch (IOException e) {
            log.println("torusrun: cannot write the event file " + eventFile + ": " + e.getMessage());
            eventFile = null; // once: the job matters more than its log
        }
    }

    /** Error files written so far. */
    public synchronized List<Path> errorFiles() {
        return List.copyOf(written);
    }

    /**
     * Runs this node's part of the job until every worker has ended. Returns 0 when at least one of
     * its workers finished (or left) cleanly and no failure went unanswered that ended the job, else
     * the exit code of its first failed worker.
     */
    public int run() throws IOException, InterruptedException {
        String endpoint;
        synchronized (this) {
            runId = spec.runId() != null ? spec.runId() : "elastic-" + ProcessHandle.current().pid();
            if (spec.endpoint() == null) {
                embedded = EmbeddedZooKeeper.start();
                endpoint = embedded.connectString();
                log.println("torusrun: started an embedded ZooKeeper at " + endpoint + " (a one-node elastic job)");
            } else {
                endpoint = spec.endpoint();
            }
            store = ZooKeeperStore.builder(endpoint).root("store").connectTimeout(spec.rdzvTimeout()).jobSecret(secret)
                    .build();
            clearFinishedRun();
            store.setEphemeral("runs/" + runId + "/agents/elastic-" + ProcessHandle.current().pid(), new byte[0]);
            Path mine = PrivateFiles.userDirectory();
            PrivateFiles.sweepHeartbeatDirs(mine); // those of killed launchers, static or elastic
            heartbeatDir = Files.createTempDirectory(mine, "hb-" + ProcessHandle.current().pid() + "-elastic-");
        }
        Map<String, String> env = new HashMap<>(spec.extraEnv());
        env.put("TORUS_RDZV_ENDPOINT", endpoint);
        env.put("TORUS_RUN_ID", runId);
        env.put(JobSecret.ENV, secret.toHex());
        env.put(ElasticOptions.MIN_ENV, Integer.toString(spec.minNodes() * spec.nprocPerNode()));
        env.put(ElasticOptions.MAX_ENV, Integer.toString(spec.maxNodes() * spec.nprocPerNode()));
        env.put(ElasticOptions.JOIN_TIMEOUT_ENV, Long.toString(joinTimeout.toMillis()));
        env.put("LOCAL_WORLD_SIZE", Integer.toString(spec.nprocPerNode()));
        env.put(LauncherLink.PID_ENV, Long.toString(ProcessHandle.current().pid()));
        try {
            for (int local = 0; local < slots.length; local++) {
                start(local, env, runId);
            }
            return watch(env, runId);
        } finally {
            shutdown();
        }
    }

    private synchronized void start(int local, Map<String, String> env, String runId) throws IOException {
        if (stopping) {
            return;
        }
        Map<String, String> e = new HashMap<>(env);
        e.put("LOCAL_RANK", Integer.toString(local));
        beats[local] = heartbeatDir.resolve("local-" + local + "-" + started);
        e.put(LauncherLink.HEARTBEAT_ENV, beats[local].toString());
        // an elastic worker's rank changes with every generation: its output and error file carry the local rank
        WorkerProcess w = new WorkerProcess(local, local, spec.command(), e, sink);
        slots[local] = w;
        finalCodes[local] = null;
        started++;
        event(replacements[local] == 0 ? "started" : "replacement", local, w, null);
        log.println("torusrun: started elastic worker local " + local + " pid " + w.pid() + " (run " + runId + ", world "
                + env.get(ElasticOptions.MIN_ENV) + ".." + env.get(ElasticOptions.MAX_ENV) + ")");
    }

    private int watch(Map<String, String> env, String runId) throws IOException, InterruptedException {
        int firstFailure = 0;
        long lastFailureNanos = 0;
        long lastBelowMinPoll = 0;
        boolean below = false;
        while (true) {
            if (stopping) {
                return 130;
            }
            boolean anyAlive = false;
            for (int local = 0; local < slots.length; local++) {
                WorkerProcess w = slots[local];
                if (w == null || finalCodes[local] != null) {
                    continue;
                }
                Integer code = w.exitCode();
                String stuck = null;
                if (code == null && !stuckTimeout.isZero()) {
                    stuck = w.stuckReason(stuckTimeout, beats[local]);
                    if (stuck != null) {
                        event("stuck", local, w, null);
                        log.println("torusrun: elastic worker local " + local + " (pid " + w.pid() + ") is stuck: " + stuck
                                + "; killing it");
                        w.kill();
                        code = w.exitCode();
                    }
                }
                if (code == null) {
                    anyAlive = true;
                    continue;
                }
                w.drainOutput(1000);
                finalCodes[local] = code;
                if (code == 0) {
                    event("exited", local, w, 0);
                }
                if (code != 0) {
                    if (stopping) {
                        return 130;
                    }
                    Path f = errorFiles.write(w, runId, replacements[local], stuck, spec.command());
                    synchronized (this) {
                        written.add(f);
                    }
                    firstFailure = firstFailure == 0 ? code : firstFailure;
                    lastFailureNanos = System.nanoTime();
                    event("failed", local, w, code);
                    log.println("torusrun: not restarting it: the job goes on without it unless it falls below its "
                            + "minimum of " + env.get(ElasticOptions.MIN_ENV));
                }
            }
            // the survivors announce a job below its minimum: replace this node's failed workers, and kill (to
            // replace) a stopped or silent one at once rather than after the stuck timeout, which may be longer
            // than the job's wait for replacements
            // the store is read at most every BELOW_MIN_POLL, not at every pass of this loop, and at once after
            // a failure: a survivor that gave up removed the flag before it exited, and a stale reading would
            // start a replacement for a job that has ended
            long now = System.nanoTime();
            if (now - lastBelowMinPoll >= BELOW_MIN_POLL_NANOS || lastFailureNanos > lastBelowMinPoll) {
                lastBelowMinPoll = now;
                below = belowMinimum();
            }
            if (below) {
                for (int local = 0; local < slots.length; local++) {
                    WorkerProcess w = slots[local];
                    if (w != null && finalCodes[local] == null && w.isAlive()) {
                        String why = w.stuckReason(BELOW_MIN_STUCK, beats[local]);
                        if (why != null) {
                            log.println("torusrun: the job is below its minimum and elastic worker local " + local
                                    + " (pid " + w.pid() + ") is stuck: " + why + "; killing it to replace it");
                            event("stuck", local, w, null);
                            w.kill();
                        }
                    }
                }
            }
            if (below) {
                for (int local = 0; local < slots.length; local++) {
                    if (finalCodes[local] != null && finalCodes[local] != 0
                            && replacements[local] < MAX_REPLACEMENTS_PER_SLOT) {
                        replacements[local]++;
                        log.println("torusrun: the job is below its minimum; starting a replacement for local " + local
                                + " (" + replacements[local] + " of " + MAX_REPLACEMENTS_PER_SLOT + ")");
                        start(local, env, runId);
                        anyAlive = true;
                    }
                }
            }
            if (!anyAlive) {
                boolean anyClean = false;
                boolean replaceable = false;
                for (int local = 0; local < slots.length; local++) {
                    Integer c = finalCodes[local];
                    anyClean |= c != null && c == 0;
                    replaceable |= c != null && c != 0 && replacements[local] < MAX_REPLACEMENTS_PER_SLOT;
                }
                // every worker here failed: stay a while, for the survivors elsewhere may find the job below
                // its minimum only after their detection bound, and ask for replacements
                if (!anyClean && replaceable && System.nanoTime() - lastFailureNanos < LINGER_NANOS) {
                    Thread.sleep(POLL_MILLIS);
                    continue;
                }
                return anyClean ? 0 : firstFailure;
            }
            Thread.sleep(POLL_MILLIS);
        }
    }

    /**
     * A run id whose job has ended (a generation record, no live member, no live launcher) is cleared, so
     * that it can be used again; a job that still has members is joined.
     */
    private void clearFinishedRun() {
        String run = "runs/" + runId;
        if (store.tryGet(run + "/elastic/gen") != null && store.list(run + "/elastic/members").isEmpty()
                && store.list(run + "/agents").stream().noneMatch(a -> a.startsWith("elastic-"))) {
            store.delete(run);
            log.println("torusrun: removed the keys of the ended elastic job '" + runId + "' to start it afresh");
        }
    }

    /** The last launcher of a job that has ended removes its keys (a failure to do so is reported, not thrown). */
    private void removeKeysIfEnded() {
        String run = "runs/" + runId;
        try {
            store.delete(run + "/agents/elastic-" + ProcessHandle.current().pid());
            if (store.list(run + "/elastic/members").isEmpty()
                    && store.list(run + "/agents").stream().noneMatch(a -> a.startsWith("elastic-"))) {
                store.delete(run);
                log.println("torusrun: the elastic job '" + runId + "' has ended; removed its keys");
            }
        } catch (RuntimeException e) {
            log.println("torusrun: could not remove the keys of '" + runId + "': " + e.getMessage());
        }
    }

    private boolean belowMinimum() {
        try {
            return store.tryGet("runs/" + runId + "/elastic/below-min") != null;
        } catch (RuntimeException e) {
            return false; // the store is away: nothing to decide now
        }
    }

    /**
     * Asks the workers to leave (SIGTERM), waits up to the leave grace for them, kills what is left,
     * and closes the store and the embedded server. Idempotent; safe from a shutdown hook.
     */
    public void shutdown() {
        stopping = true;
        if (!shutDown.compareAndSet(false, true)) {
            return; // the other caller (the signal's hook, or run's end) does it
        }
        List<Thread> stoppers = new ArrayList<>();
        WorkerProcess[] ws;
        synchronized (this) {
            ws = slots.clone();
        }
        List<WorkerProcess> leaving = new ArrayList<>();
        for (WorkerProcess w : ws) {
            if (w != null && w.isAlive()) {
                leaving.add(w);
            }
        }
        if (!leaving.isEmpty()) {
            log.println("torusrun: leaving the elastic job: SIGTERM to " + leaving.size() + " worker(s); they leave at "
                    + "their next step boundary (killed after " + LEAVE_GRACE_MILLIS / 1000 + " s)");
        }
        for (WorkerProcess w : leaving) {
            event("leave", w.localRank, w, null);
            Thread t = new Thread(() -> w.stop(LEAVE_GRACE_MILLIS), "torusrun-leave-" + w.localRank);
            t.start();
            stoppers.add(t);
        }
        for (Thread t : stoppers) {
            try {
                t.join(LEAVE_GRACE_MILLIS + 10_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        for (WorkerProcess w : leaving) {
            event("exited", w.localRank, w, w.exitCode());
            log.println("torusrun: elastic worker local " + w.localRank + " (pid " + w.pid() + ") exited with code "
                    + w.exitCode() + (Integer.valueOf(0).equals(w.exitCode()) ? " (left)" : ""));
        }
        synchronized (this) {
            if (store != null) {
                if (runId != null) {
                    removeKeysIfEnded();
                }
                store.close();
                store = null;
            }
            if (embedded != null) {
                embedded.close();
                embedded = null;
            }
            if (heartbeatDir != null) {
                try {
                    PrivateFiles.deleteFlat(heartbeatDir);
                } catch (IOException e) {
                    // a private temp folder left behind is harmless
                }
                heartbeatDir = null;
            }
        }
    }
}
