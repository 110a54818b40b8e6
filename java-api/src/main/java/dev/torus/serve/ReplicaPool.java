package dev.torus.serve;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Keeps the number of replicas where the {@link Autoscaler} wants it. Every {@code sampleInterval} it
 * records the batcher's in-flight count averaged over the interval, asks for a decision, logs any change with its inputs, then:
 * <ul>
 *   <li>scales up by launching replica processes through the {@link Launcher}; a replica counts as
 *       <i>starting</i> until it registers (it registers only after loading and warming up);</li>
 *   <li>scales down one replica at a time: the replica stops getting batches (draining), and once it has
 *       none in flight the pool asks it to exit through the registry; a process that outlives the grace
 *       period is killed;</li>
 *   <li>replaces replicas that die: a process that exits without being asked is dropped and a new one
 *       launched to get back to the target;</li>
 *   <li>adopts replicas registered by an earlier router (after a router restart) and counts them.</li>
 * </ul>
 * Owns the processes it launched and its scheduler; {@link #close()} stops them. Thread-safe.
 */
public final class ReplicaPool implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(ReplicaPool.class);
    private static final long FAILED_GRACE_NANOS = TimeUnit.SECONDS.toNanos(10);
    private static final long MAX_BACKOFF_NANOS = TimeUnit.SECONDS.toNanos(30);

    /** Starts one replica process that will register under {@code replicaId}. */
    public interface Launcher {
        Process launch(String replicaId) throws IOException;
    }

    /** Something the pool did, for logs and benchmarks. */
    public record Event(long atNanos, String kind, String replicaId, int ready, int starting, String detail) {
    }

    private static final class Launched {
        final Process process;
        final long startedAt;
        boolean stopRequested;
        long stopRequestedAt;

        Launched(Process process, long startedAt) {
            this.process = process;
            this.startedAt = startedAt;
        }
    }

    private final ReplicaRegistry registry;
    private final Launcher launcher;
    private final ReplicaSet replicas;
    private final DynamicBatcher batcher;
    private final Autoscaler autoscaler;
    private final long sampleIntervalNanos;
    private final long startTimeoutNanos;
    private final String idPrefix;
    private final Map<String, Launched> launched = new LinkedHashMap<>();
    private final Set<String> draining = new HashSet<>();
    private final Set<String> foreign = java.util.concurrent.ConcurrentHashMap.newKeySet();
    private final List<Event> events = new CopyOnWriteArrayList<>();
    private final List<Autoscaler.Decision> decisions = new CopyOnWriteArrayList<>();
    private final ScheduledExecutorService ticker;
    private final HttpClient probe = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(1)).build();
    private AutoCloseable watch;
    private volatile java.util.function.Consumer<Event> listener = e -> { };
    private int target;
    private int nextId;
    private int failedStarts;
    private long nextLaunchAt = Long.MIN_VALUE;
    private final Set<String> everReady = java.util.concurrent.ConcurrentHashMap.newKeySet();
    private volatile boolean closed;

    public ReplicaPool(ReplicaRegistry registry, Launcher launcher, ReplicaSet replicas, DynamicBatcher batcher,
                       Autoscaler autoscaler, long sampleIntervalNanos, long startTimeoutNanos) {
        if (registry == null || launcher == null || replicas == null || batcher == null || autoscaler == null) {
            throw new IllegalArgumentException("registry, launcher, replicas, batcher and autoscaler must not be null");
        }
        if (sampleIntervalNanos <= 0 || startTimeoutNanos <= 0) {
            throw new IllegalArgumentException("sampleInterval and startTimeout must be > 0");
        }
        this.registry = registry;
        this.launcher = launcher;
        this.replicas = replicas;
        this.batcher = batcher;
        this.autoscaler = autoscaler;
        this.sampleIntervalNanos = sampleIntervalNanos;
        this.startTimeoutNanos = startTimeoutNanos;
        this.idPrefix = "r" + Long.toString(ProcessHandle.current().pid(), 36) + "-"
                + Long.toString(System.currentTimeMillis() % 1_000_000, 36) + "-";
        this.target = autoscaler.options().min();
        replicas.onFirstBatch(id -> event("first-batch", id, ""));
        this.ticker = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "torus-pool");
            t.setDaemon(true);
            return t;
        });
    }

    /** Starts watching the registry and scaling; launches the minimum at once. */
    public synchronized void start() {
        watch = registry.watch(this::registeredChanged);
        reconcile();
        ticker.scheduleAtFixedRate(this::tickSafely, sampleIntervalNanos, sampleIntervalNanos, TimeUnit.NANOSECONDS);
    }

    private void registeredChanged(List<ReplicaRegistry.Entry> all) {
        List<ReplicaRegistry.Entry> entries = new ArrayList<>();
        for (ReplicaRegistry.Entry e : all) {
            if (e.model().equals(replicas.model())) {
                entries.add(e);
            } else if (foreign.add(e.id())) {
                // a replica of another version of this model (for example left running by an earlier router)
                LOG.warn("replica {} at {} serves model {}, not {}: asking it to stop", e.id(), e.endpoint(), e.model(),
                        replicas.model());
                try {
                    registry.requestStop(e.id());
                } catch (RuntimeException ex) {
                    LOG.warn("cannot ask replica {} to stop: {}", e.id(), ex.toString());
                }
            }
        }
        Set<String> before = replicas.registered();
        replicas.update(entries);
        for (ReplicaRegistry.Entry e : entries) {
            if (!before.contains(e.id())) {
                synchronized (this) {
                    everReady.add(e.id());
                    failedStarts = 0;
                    nextLaunchAt = Long.MIN_VALUE;
                    event("ready", e.id(), launched.containsKey(e.id()) ? "registered" : "adopted (registered by an earlier router)");
                }
            }
        }
        for (String id : before) {
            if (entries.stream().noneMatch(e -> e.id().equals(id))) {
                synchronized (this) {
                    draining.remove(id);
                    event("deregistered", id, "");
                }
            }
        }
    }

    private void tickSafely() {
        try {
            tick();
        } catch (RuntimeException e) {
            LOG.warn("pool tick failed: {}", e.toString());
        }
    }

    private synchronized void tick() {
        if (closed) {
            return;
        }
        long now = System.nanoTime();
        autoscaler.record(now, batcher.takeAverageInFlight());
        reapExited();
        int current = currentCount();
        Autoscaler.Decision d = autoscaler.decide(now, current);
        if (d.changes()) {
            decisions.add(d);
            LOG.info("autoscaler: {}", d);
            event("decision", "", d.toString());
            target = d.desired();
        }
        reconcile();
        finishDrains(now);
        probeFailed();
    }

    /**
     * Replicas counted toward the target: ready ones, launched ones still starting, and launched ones that
     * failed a call less than {@link #FAILED_GRACE_NANOS} ago but are alive (a slow batch is not a death; a
     * replacement launched at once would only be drained again when the first recovers).
     */
    private int currentCount() {
        Set<String> registered = replicas.registered();
        List<String> ready = replicas.ready();
        int n = 0;
        for (String id : ready) {
            if (!draining.contains(id)) {
                n++;
            }
        }
        for (String id : registered) {
            Launched l = launched.get(id);
            long failedFor = replicas.failedFor(id);
            if (failedFor >= 0 && failedFor < FAILED_GRACE_NANOS && l != null && l.process.isAlive()
                    && !l.stopRequested && !draining.contains(id)) {
                n++;
            }
        }
        return n + startingIds().size();
    }

    private void reconcile() {
        int current = currentCount();
        if (current < target && System.nanoTime() < nextLaunchAt) {
            return;
        }
        for (int i = current; i < target; i++) {
            String id = idPrefix + nextId++;
            try {
                Process p = launcher.launch(id);
                launched.put(id, new Launched(p, System.nanoTime()));
                event("launch", id, "pid " + p.pid());
            } catch (IOException | RuntimeException e) {
                LOG.warn("cannot launch replica {}: {}", id, e.toString());
                event("launch-failed", id, e.toString());
                break;
            }
        }
        if (current > target) {
            // prefer a replica that has not started yet, then the ready one with the least work
            List<String> starting = startingIds();
            String victim = starting.isEmpty() ? null : starting.get(starting.size() - 1);
            if (victim != null) {
                Launched l = launched.get(victim);
                l.stopRequested = true;
                l.stopRequestedAt = System.nanoTime();
                l.process.destroy();
                event("cancel", victim, "stopped before it was ready");
                return;
            }
            // adopted replicas (not launched by this router) go first: this router cannot kill them if they do not
            // stop, and an entry someone else wrote into the registry must never push out one of ours
            int least = Integer.MAX_VALUE;
            for (String id : replicas.ready()) {
                int rank = (launched.containsKey(id) ? 1_000_000 : 0) + replicas.inFlightBatches(id);
                if (!draining.contains(id) && rank < least) {
                    least = rank;
                    victim = id;
                }
            }
            if (victim != null) {
                replicas.drain(victim);
                draining.add(victim);
                event("drain", victim, "");
            }
        }
    }

    private void finishDrains(long now) {
        for (String id : new ArrayList<>(draining)) {
            Launched l = launched.get(id);
            if (replicas.inFlightBatches(id) == 0 && (l == null || !l.stopRequested)) {
                registry.requestStop(id);
                if (l != null) {
                    l.stopRequested = true;
                    l.stopRequestedAt = now;
                }
                event("stop", id, "drained");
                if (l == null) {
                    draining.remove(id);
                }
            }
        }
        for (Map.Entry<String, Launched> e : launched.entrySet()) {
            Launched l = e.getValue();
            if (l.stopRequested && l.process.isAlive() && now - l.stopRequestedAt > TimeUnit.SECONDS.toNanos(10)) {
                l.process.destroyForcibly();
                event("kill", e.getKey(), "did not exit within 10 s of the stop request");
            }
            if (!l.stopRequested && !replicas.registered().contains(e.getKey()) && l.process.isAlive()
                    && now - l.startedAt > startTimeoutNanos) {
                l.stopRequested = true;
                l.stopRequestedAt = now;
                l.process.destroyForcibly();
                event("kill", e.getKey(), "not ready within " + TimeUnit.NANOSECONDS.toMillis(startTimeoutNanos) + " ms");
            }
        }
    }

    private void reapExited() {
        for (var it = launched.entrySet().iterator(); it.hasNext(); ) {
            Map.Entry<String, Launched> e = it.next();
            Launched l = e.getValue();
            if (!l.process.isAlive()) {
                it.remove();
                draining.remove(e.getKey());
                replicas.markFailed(e.getKey());
                if (!l.stopRequested && !everReady.contains(e.getKey())) {
                    failedStarts++;
                    long backoff = Math.min(MAX_BACKOFF_NANOS, TimeUnit.SECONDS.toNanos(1) << Math.min(5, failedStarts - 1));
                    nextLaunchAt = System.nanoTime() + backoff;
                    event("start-failed", e.getKey(), "exit code " + l.process.exitValue() + " before it was ready ("
                            + failedStarts + " in a row; its log says why); next launch in "
                            + TimeUnit.NANOSECONDS.toMillis(backoff) + " ms");
                } else if (!l.stopRequested) {
                    event("died", e.getKey(), "exit code " + l.process.exitValue() + "; replacing it");
                } else {
                    event("exited", e.getKey(), "exit code " + l.process.exitValue());
                }
            }
        }
    }

    private void probeFailed() {
        // a replica that failed one call but is still registered and answers /v1/ready gets batches again
        for (String id : replicas.registered()) {
            Launched l = launched.get(id);
            ReplicaSet.Replica r = replicas.replica(id);
            if (r == null || !replicas.isFailed(id) || draining.contains(id) || (l != null && !l.process.isAlive())) {
                continue;
            }
                URI ready = URI.create(r.batchUri().toString().replace(ReplicaServer.BATCH_PATH, ReplicaServer.READY_PATH));
                probe.sendAsync(HttpRequest.newBuilder(ready).timeout(Duration.ofSeconds(1)).GET().build(),
                        HttpResponse.BodyHandlers.discarding()).thenAccept(res -> {
                            if (res.statusCode() == 200) {
                                replicas.recover(id);
                            }
                        });
        }
    }

    private synchronized void event(String kind, String id, String detail) {
        Event e = new Event(System.nanoTime(), kind, id, replicas.readyCount(), startingCount(), detail);
        events.add(e);
        try {
            listener.accept(e);
        } catch (RuntimeException ex) {
            LOG.debug("pool listener failed: {}", ex.toString());
        }
        if (!kind.equals("decision")) {
            LOG.info("pool: {} {} {}", kind, id, detail);
        }
    }

    /** Launched replicas, in launch order, that have not registered yet and were not asked to stop. */
    private List<String> startingIds() {
        Set<String> registered = replicas.registered();
        List<String> ids = new ArrayList<>();
        for (Map.Entry<String, Launched> e : launched.entrySet()) {
            if (!registered.contains(e.getKey()) && !e.getValue().stopRequested) {
                ids.add(e.getKey());
            }
        }
        return ids;
    }

    private int startingCount() {
        return startingIds().size();
    }

    /** Receives every event (decisions with their inputs included) as it happens, on the pool's threads. */
    public void onEvent(java.util.function.Consumer<Event> l) {
        listener = l == null ? e -> { } : l;
    }

    /** Consecutive replicas that exited before they were ready (0 once one registers). */
    public synchronized int failedStarts() {
        return failedStarts;
    }

    /** Launched replicas that have not registered yet. */
    public synchronized int starting() {
        return startingCount();
    }

    /** The count the pool is steering toward. */
    public synchronized int target() {
        return target;
    }

    public List<Event> events() {
        return List.copyOf(events);
    }

    public List<Autoscaler.Decision> decisions() {
        return List.copyOf(decisions);
    }

    /** Process ids of the replicas this pool launched and that are alive. */
    public synchronized Map<String, Long> launchedPids() {
        Map<String, Long> m = new LinkedHashMap<>();
        launched.forEach((id, l) -> {
            if (l.process.isAlive()) {
                m.put(id, l.process.pid());
            }
        });
        return m;
    }

    /**
     * Stops scaling. With {@code stopReplicas}, asks every replica this pool launched or adopted to exit, and
     * kills those it launched that are still alive after 5 s; without it they keep running (and re-register with
     * the next router).
     */
    public void close(boolean stopReplicas) {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
        }
        ticker.shutdownNow();
        try {
            if (watch != null) {
                watch.close();
            }
        } catch (Exception e) {
            LOG.debug("closing the registry watch: {}", e.toString());
        }
        if (!stopReplicas) {
            return;
        }
        List<Launched> all;
        synchronized (this) {
            Set<String> ids = new java.util.LinkedHashSet<>(launched.keySet());
            ids.addAll(replicas.registered());     // adopted ones too
            for (String id : ids) {
                try {
                    registry.requestStop(id);
                } catch (RuntimeException e) {
                    LOG.debug("stop request for {} failed: {}", id, e.toString());
                }
            }
            all = new ArrayList<>(launched.values());
        }
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        for (Launched l : all) {
            try {
                l.process.waitFor(Math.max(1, until - System.nanoTime()), TimeUnit.NANOSECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            if (l.process.isAlive()) {
                l.process.destroyForcibly();
            }
        }
    }

    @Override
    public void close() {
        close(true);
    }
}
