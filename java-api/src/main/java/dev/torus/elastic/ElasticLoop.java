package dev.torus.elastic;

import dev.torus.comm.CommException;
import dev.torus.comm.Communicator;
import dev.torus.memory.Allocator;
import dev.torus.rendezvous.JobSecret;
import dev.torus.rendezvous.Store;
import dev.torus.rendezvous.Stores;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.Map;

/**
 * The training loop of an elastic job, with the protocol of {@link ElasticGroup} built
 * in, so that every member runs its collectives in the same order through any change:
 *
 * <pre>
 * try (ElasticLoop loop = ElasticLoop.join(store, opts, state, allocator, commitEvery, events)) {
 *     while (loop.next(totalSteps)) {           // step boundary: joins, leaves, rollbacks, state sync
 *         loop.step(comm -> trainOneStep(comm)); // a failed collective: recover, roll back, sync
 *     }
 * }
 * </pre>
 *
 * A joiner takes the committed state before its first step; after a failure every
 * survivor restores its last commit; the state is committed every {@code commitEvery}
 * steps. Each change is written as one JSON line to the event file (if given): kind,
 * step, rank, pid, generations and world sizes before and after, detection and
 * rebuild ms, state-transfer bytes and ms, ms until the first step after the change
 * completed, and the steps rolled back. The loop owns its group (and closes it); it
 * borrows the store, the state and the allocator. Not thread-safe.
 */
public final class ElasticLoop implements AutoCloseable {
    /** One training step's work on the current communicator: compute, reduce, update. It must not commit. */
    public interface Step {
        void run(Communicator comm) throws Exception;
    }

    private final ElasticGroup group;
    private final ElasticState state;
    private final Allocator allocator;
    private final int commitEvery;
    private final Writer events;
    private String pendingEvent;
    private long pendingSince;
    private Store ownedStore;
    private long stepNanos;
    private long commitNanos;
    private volatile boolean terminateRequested;
    private sun.misc.SignalHandler previousTermHandler;

    private ElasticLoop(ElasticGroup group, ElasticState state, Allocator allocator, int commitEvery, Writer events) {
        this.group = group;
        this.state = state;
        this.allocator = allocator;
        this.commitEvery = commitEvery;
        this.events = events;
    }

    /**
     * Joins the job (waiting up to {@code opts.initTimeout()} to be admitted), takes or
     * shares the committed state, and returns the loop. {@code events} may be null.
     */
    public static ElasticLoop join(Store store, ElasticOptions opts, ElasticState state, Allocator allocator,
                                   int commitEvery, Path events) {
        return join(store, opts, state, allocator, commitEvery, events, Map.of());
    }

    /** As above, with sub-communicators cut from every generation's world ({@link ElasticGroup#split(String)}). */
    public static ElasticLoop join(Store store, ElasticOptions opts, ElasticState state, Allocator allocator,
                                   int commitEvery, Path events, Map<String, ElasticGroup.SplitRule> splits) {
        if (state == null || allocator == null) {
            throw new IllegalArgumentException("state and allocator must not be null");
        }
        if (commitEvery < 1) {
            throw new IllegalArgumentException("commitEvery must be >= 1, got " + commitEvery);
        }
        Writer w = null;
        ElasticGroup g = null;
        try {
            if (events != null) {
                w = Files.newBufferedWriter(events, StandardCharsets.UTF_8, StandardOpenOption.CREATE,
                        StandardOpenOption.APPEND);
            }
            long t0 = System.nanoTime();
            g = ElasticGroup.join(store, opts, opts.initTimeout(), splits);
            ElasticLoop loop = new ElasticLoop(g, state, allocator, commitEvery, w);
            if (!g.joinedRunning()) {
                state.commit();
            }
            long s0 = System.nanoTime();
            try {
                loop.syncState();
            } catch (CommException e) {
                // a member died during the first transfer: recover with the others, then take the state again
                loop.handle(g.recover(e));
            }
            long stateMs = (System.nanoTime() - s0) / 1_000_000;
            loop.note(g.joinedRunning() ? "joined" : "formed", -1, g.generation(), -1, g.comm().size(), 0,
                    (s0 - t0) / 1_000_000, state.committedBytes().length, stateMs, 0, t0);
            return loop;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot open the event file " + events, e);
        } catch (RuntimeException e) {
            if (g != null) {
                g.close();
            }
            if (w != null) {
                try {
                    w.close();
                } catch (IOException ignored) {
                    // closing after a failure
                }
            }
            throw e;
        }
    }

    /**
     * The loop of a worker started by {@code torusrun --elastic}: options from the environment
     * ({@link ElasticOptions#fromEnv}), the store opened from TORUS_RDZV_ENDPOINT with the job secret
     * from TORUS_JOB_SECRET (owned by the loop and closed with it), and SIGTERM turned into a graceful
     * leave ({@link #leaveOnSigterm}).
     */
    public static ElasticLoop fromEnv(ElasticState state, Allocator allocator, int commitEvery, Path events) {
        Map<String, String> env = System.getenv();
        ElasticOptions opts = ElasticOptions.fromEnv(env);
        String endpoint = env.get("TORUS_RDZV_ENDPOINT");
        if (endpoint == null || endpoint.isBlank()) {
            throw new IllegalArgumentException("environment variable TORUS_RDZV_ENDPOINT is not set: start the worker "
                    + "with torusrun --elastic");
        }
        Store store = Stores.open(endpoint, "store", Duration.ofSeconds(15), JobSecret.fromEnvironment(env));
        try {
            ElasticLoop loop = join(store, opts, state, allocator, commitEvery, events);
            loop.ownedStore = store;
            loop.leaveOnSigterm();
            return loop;
        } catch (RuntimeException e) {
            store.close();
            throw e;
        }
    }

    /**
     * From now on SIGTERM asks this member to leave gracefully: it finishes the step in flight and
     * leaves at the next boundary, with no rollback for anyone, and {@link #next} returns false.
     * It replaces the JVM's own SIGTERM handling (shutdown hooks do not run on SIGTERM).
     */
    public void leaveOnSigterm() {
        sun.misc.SignalHandler before = sun.misc.Signal.handle(new sun.misc.Signal("TERM"),
                sig -> terminateRequested = true);
        if (previousTermHandler == null) {
            previousTermHandler = before;
        }
    }

    public ElasticGroup group() {
        return group;
    }

    public Communicator comm() {
        return group.comm();
    }

    /** Asks to leave gracefully at the next step boundary (no rollback for anyone). */
    public void leave() {
        group.requestLeave();
    }

    /**
     * The step boundary. Returns true when this member should run step
     * {@code state.step()}; false when {@code totalSteps} are done or it left the group.
     */
    public boolean next(long totalSteps) {
        if (terminateRequested && group.isMember() && !group.leaveRequested()) {
            group.requestLeave();
        }
        while (group.isMember() && state.step() < totalSteps) {
            MembershipChange c = group.boundary();
            if (c == null) {
                return true;
            }
            handle(c);
        }
        return false;
    }

    /** Runs one step; a failed collective goes through recovery and rollback, and the step is then run again at the next {@link #next}. */
    public void step(Step work) {
        long t0 = System.nanoTime();
        try {
            work.run(group.comm());
        } catch (CommException e) {
            handle(group.recover(e));
            return;
        } catch (RuntimeException e) {
            throw e;
        } catch (Exception e) {
            throw new IllegalStateException("the training step failed: " + e, e);
        }
        state.setStep(state.step() + 1);
        if (state.step() % commitEvery == 0) {
            long c0 = System.nanoTime();
            state.commit();
            commitNanos += System.nanoTime() - c0;
        }
        stepNanos += System.nanoTime() - t0;
        flushPending();
    }

    /** Seconds this member spent in completed steps (the work and the commits), since it joined. */
    public double stepSeconds() {
        return stepNanos / 1e9;
    }

    /** Seconds of {@link #stepSeconds()} spent committing: the cost of the commit interval. */
    public double commitSeconds() {
        return commitNanos / 1e9;
    }

    private void handle(MembershipChange c) {
        long t0 = System.nanoTime();
        long rolledBack = 0;
        long bytes = 0;
        long stateMs = 0;
        if (group.isMember() && c.needsStateSync()) {
            // what rank 0 sends is its last commit: after a failure everyone goes back to it; after a
            // planned change everyone commits the live state first, so nobody moves back
            if (c.failure()) {
                // a joiner that never held the state has no commit: the transfer below brings it
                rolledBack = state.hasCommit() ? state.restore() : 0;
            } else {
                state.commit();
            }
            long s0 = System.nanoTime();
            try {
                syncState();
            } catch (CommException e) {
                // a member died during the transfer: recover again; the state goes back to the commit
                handle(group.recover(e));
                return;
            }
            stateMs = (System.nanoTime() - s0) / 1_000_000;
            bytes = state.committedBytes().length;
        }
        String kind = c.failure() ? "failure" : !c.joined().isEmpty() && !c.left().isEmpty() ? "join+leave"
                : !c.joined().isEmpty() ? "join" : !c.left().isEmpty() ? "leave" : "rebuild";
        note(kind, c.generationBefore(), c.generationAfter(), c.worldBefore(), c.worldAfter(), c.detectionMillis(),
                c.rebuildMillis(), bytes, stateMs, rolledBack,
                t0 - (c.detectionMillis() + c.rebuildMillis()) * 1_000_000); // the change began before both
        if (!group.isMember()) {
            flushPending();
            if (!group.leaveRequested()) {
                throw new dev.torus.comm.StaleGenerationException("member " + group.id() + " was fenced out of generation "
                        + c.generationAfter() + " (members " + group.members() + "): the others judged it dead while it "
                        + "was stopped or cut off; it must exit");
            }
        }
    }

    /**
     * Takes the state of rank 0. A rank whose model does not fit leaves and fails with the
     * error that names the mismatch; the others go on: its departure fails their next
     * collective, and recovery rebuilds without it, losing nothing (their state is the commit).
     */
    private void syncState() {
        ElasticGroup.faultPoint("sync");
        try {
            state.sync(group.comm(), 0, allocator);
        } catch (StateMismatchException e) {
            if (e.ranks().contains(group.comm().rank())) {
                group.requestLeave();
                throw e;
            }
            // the odd ranks leave; carry on
        }
    }

    private void note(String kind, long genBefore, long genAfter, int worldBefore, int worldAfter, long detectMs,
                      long rebuildMs, long bytes, long stateMs, long rolledBack, long since) {
        flushPending();
        int rank = group.isMember() ? group.comm().rank() : -1;
        pendingEvent = "{\"kind\":\"" + kind + "\",\"step\":" + state.step() + ",\"rank\":" + rank + ",\"member\":"
                + group.id() + ",\"pid\":" + ProcessHandle.current().pid() + ",\"generation_before\":" + genBefore
                + ",\"generation_after\":" + genAfter + ",\"world_before\":" + worldBefore + ",\"world_after\":"
                + worldAfter + ",\"detection_ms\":" + detectMs + ",\"rebuild_ms\":" + rebuildMs
                + ",\"state_bytes\":" + bytes + ",\"state_ms\":" + stateMs + ",\"rolled_back_steps\":" + rolledBack;
        pendingSince = since;
    }

    /** Writes the pending event, with the time from its change to the first completed step after it (-1 if none). */
    private void flushPending() {
        if (pendingEvent == null) {
            return;
        }
        long firstStepMs = group.isMember() ? (System.nanoTime() - pendingSince) / 1_000_000 : -1;
        String line = pendingEvent + ",\"first_step_ms\":" + firstStepMs + "}";
        pendingEvent = null;
        if (events != null) {
            try {
                events.write(line);
                events.write('\n');
                events.flush();
            } catch (IOException e) {
                throw new UncheckedIOException("cannot write the elastic event file", e);
            }
        }
    }

    /** Writes a pending event, leaves the group and closes the event file. */
    @Override
    public void close() {
        try {
            if (pendingEvent != null) {
                String line = pendingEvent + ",\"first_step_ms\":-1}";
                pendingEvent = null;
                if (events != null) {
                    events.write(line);
                    events.write('\n');
                }
            }
            if (events != null) {
                events.close();
            }
        } catch (IOException e) {
            // the group still has to be left
        } finally {
            try {
                group.close();
            } finally {
                if (previousTermHandler != null) {
                    // SIGTERM means what it meant before this loop took it over
                    sun.misc.Signal.handle(new sun.misc.Signal("TERM"), previousTermHandler);
                    previousTermHandler = null;
                }
                if (ownedStore != null) {
                    ownedStore.close();
                }
            }
        }
    }
}
