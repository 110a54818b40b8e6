package dev.torus.elastic;

import dev.torus.DType;
import dev.torus.comm.CommException;
import dev.torus.comm.Communicator;
import dev.torus.comm.ReduceOp;
import dev.torus.comm.StaleGenerationException;
import dev.torus.rendezvous.StoreException;
import dev.torus.rendezvous.StoreTimeoutException;
import dev.torus.rendezvous.Store;
import dev.torus.tensor.Tensor;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * One process's membership in an elastic job, and the communicator of the current
 * generation, rebuilt in place when members join, leave or die.
 *
 * <pre>
 * runs/&lt;run&gt;/elastic/next-id              member ids, handed out in join order
 * runs/&lt;run&gt;/elastic/members/&lt;id&gt;         ephemeral: this member's session lives
 * runs/&lt;run&gt;/elastic/hb/&lt;id&gt;              ephemeral heartbeat counter, rewritten every detectionBound/5
 * runs/&lt;run&gt;/elastic/leaving/&lt;id&gt;         a graceful leave request
 * runs/&lt;run&gt;/elastic/gen                    the current generation, only ever raised
 * runs/&lt;run&gt;/elastic/gen-&lt;g&gt;/members      member ids of generation g in rank order, written once
 * runs/&lt;run&gt;/elastic-world/gen-&lt;g&gt;/...     the communicator of generation g
 * </pre>
 *
 * <p>{@link #join} registers this process and returns once it is a member of a
 * generation: the first {@code minSize} members form generation 0; a later joiner is
 * admitted by the incumbents at their next step boundary, without stopping anyone.
 * {@link #boundary()} is collective and called by every member at the same step: a
 * one-element all-reduce tells whether anyone sees a join or a leave request; if so,
 * the members agree on generation g+1 (the first proposal written wins, so all read the
 * same list) and build its communicator. A failure in a collective, or in the
 * boundary itself, goes through {@link #recover}: the survivors watch heartbeats for the
 * detection bound, drop the members whose heartbeat did not change, and rebuild; the
 * change then says {@link MembershipChange#failure()}, and the caller rolls back to its
 * last commit. A member left out of a generation (a graceful leaver, or one judged dead
 * while it was only slow) is no longer {@link #isMember()}; a fenced member that tries
 * to use an old generation gets {@link StaleGenerationException}.
 *
 * <p>The order of collectives after a change must be the same everywhere. A joiner
 * ({@link #joinedRunning()}) first takes the committed state ({@link ElasticState#sync}),
 * then calls {@link #boundary()}; so after a change that {@linkplain
 * MembershipChange#needsStateSync() needs a sync}, every incumbent syncs (after
 * restoring, on failure) and calls {@link #boundary()} again before its next step.
 *
 * <p>The group borrows the store (one per process: its session is this member's
 * liveness) and owns its heartbeat thread and each generation's communicator. Not
 * thread-safe: call it from the training thread.
 */
public final class ElasticGroup implements AutoCloseable {
    /**
     * Test instrumentation, null in production: called with "admitted" when a joiner is listed in a
     * generation and before it joins its communicator, with "rebuild" once a new generation's record
     * is agreed and before its communicator forms, and (from {@link ElasticLoop}) with "sync" before a
     * state transfer. The fault tests set it in a worker process to die at exactly those points.
     */
    static volatile java.util.function.Consumer<String> faultPoint;

    static void faultPoint(String point) {
        java.util.function.Consumer<String> f = faultPoint;
        if (f != null) {
            f.accept(point);
        }
    }

    private final Store store;
    private final ElasticOptions opts;
    private final String base;
    private final long id;
    private final Thread heartbeat;
    // id -> {last value, nanos it last changed}; read by the training thread and the heartbeat thread
    private final Map<Long, long[]> seen = new java.util.concurrent.ConcurrentHashMap<>();
    private volatile boolean closed;
    private volatile Communicator comm;
    private volatile long generation = -1;
    private volatile List<Long> members = List.of();
    private volatile boolean leaveRequested;
    private volatile long watchAbortedGeneration = -1;
    /** A join or a leave request seen by the heartbeat thread, for the next boundary. */
    private volatile boolean pendingSeen;
    private boolean joinedRunning;

    /**
     * How a sub-communicator is cut from each generation's world, as {@link Communicator#split}
     * cuts it: the color and key of rank {@code rank} in a world of {@code size}. A negative color
     * leaves the rank out of every sub-communicator of this name.
     */
    public interface SplitRule {
        int color(int rank, int size);

        default int key(int rank, int size) {
            return rank;
        }
    }

    private static final int MAX_FORMATION_FAILURES = 5;
    private int formationFailures;
    private final Map<String, SplitRule> splitRules = new LinkedHashMap<>();
    // written by the training thread, aborted by the heartbeat thread; a rank that opted out has no entry
    private final Map<String, Communicator> splits = new java.util.concurrent.ConcurrentHashMap<>();

    private ElasticGroup(Store store, ElasticOptions opts, long id) {
        this.store = store;
        this.opts = opts;
        this.base = "runs/" + opts.runId() + "/elastic/";
        this.id = id;
        this.heartbeat = new Thread(this::beat, "torus-elastic-heartbeat-" + id);
        heartbeat.setDaemon(true);
    }

    /**
     * Registers this process and waits up to {@code timeout} to become a member of a
     * generation. Throws {@link StoreTimeoutException} if it was not admitted in time (the
     * job is at its maximum size, or too few members came to form it).
     */
    public static ElasticGroup join(Store store, ElasticOptions opts, Duration timeout) {
        return join(store, opts, timeout, Map.of());
    }

    /**
     * As {@link #join(Store, ElasticOptions, Duration)}, with sub-communicators cut by {@code splits}
     * from every generation's world, in the map's order, and rebuilt with it on every change
     * ({@link #split(String)}). Every member must pass the same names and rules in the same order.
     */
    public static ElasticGroup join(Store store, ElasticOptions opts, Duration timeout, Map<String, SplitRule> splits) {
        if (store == null) {
            throw new IllegalArgumentException("store must not be null");
        }
        if (opts == null) {
            throw new IllegalArgumentException("opts must not be null");
        }
        if (timeout == null || timeout.isNegative() || timeout.isZero()) {
            throw new IllegalArgumentException("timeout must be a positive duration, got " + timeout);
        }
        if (splits == null) {
            throw new IllegalArgumentException("splits must not be null (Map.of() for none)");
        }
        splits.forEach((name, rule) -> {
            if (name == null || !name.matches("[A-Za-z0-9_-]{1,40}") || rule == null) {
                throw new IllegalArgumentException("splits: each name must be 1-40 characters of [A-Za-z0-9_-] with a "
                        + "rule, got '" + name + "' -> " + rule);
            }
        });
        long id = store.add("runs/" + opts.runId() + "/elastic/next-id", 1);
        ElasticGroup g = new ElasticGroup(store, opts, id);
        g.splitRules.putAll(splits);
        try {
            store.setEphemeral(g.base + "members/" + id,
                    Long.toString(ProcessHandle.current().pid()).getBytes(StandardCharsets.US_ASCII));
            g.heartbeat.start();
            g.awaitAdmission(System.nanoTime() + timeout.toNanos());
            return g;
        } catch (RuntimeException e) {
            g.close();
            throw e;
        }
    }

    public long id() {
        return id;
    }

    /** The communicator of the current generation; null once this process is no longer a member. */
    public Communicator comm() {
        return comm;
    }

    /**
     * The current generation's sub-communicator named {@code name} (see {@link SplitRule}); null when
     * this rank's color left it out. Owned by the group: closed and rebuilt with every change.
     *
     * @throws IllegalArgumentException if no rule of that name was given to {@link #join}
     */
    public Communicator split(String name) {
        if (!splitRules.containsKey(name)) {
            throw new IllegalArgumentException("no split named '" + name + "'; known: " + splitRules.keySet());
        }
        requireMember();
        return splits.get(name);
    }

    public long generation() {
        return generation;
    }

    /** The member ids of the current generation, in rank order. */
    public List<Long> members() {
        return members;
    }

    public boolean isMember() {
        return comm != null;
    }

    /**
     * True when this process was admitted into a running job (a generation after the
     * first): it must take the committed state before training. The founders of
     * generation 0 share rank 0's state instead.
     */
    public boolean joinedRunning() {
        return joinedRunning;
    }

    /** Whether this member asked to leave ({@link #requestLeave()}). */
    public boolean leaveRequested() {
        return leaveRequested;
    }

    /** Asks to leave at the next step boundary, after finishing the current step (no rollback for anyone). */
    public void requestLeave() {
        leaveRequested = true;
        store.set(base + "leaving/" + id, new byte[0]);
    }

    private void awaitAdmission(long deadline) {
        while (true) {
            byte[] g = store.tryGet(base + "gen");
            if (g != null) {
                long gen = parse(g);
                List<Long> m = decode(store.tryGet(base + "gen-" + gen + "/members"));
                if (m != null && m.contains(id)) {
                    joinedRunning = gen > 0; // generation 0 is formed by its founders; later ones admit joiners
                    try {
                        faultPoint("admitted");
                        enter(gen, m);
                    } catch (CommException | StoreTimeoutException e) {
                        // a member of this generation died while it formed: go on with the others into the next
                        generation = gen;
                        members = List.copyOf(m);
                        recoverFrom(e);
                        if (!isMember()) {
                            throw new StaleGenerationException("member " + id + " of elastic run '" + opts.runId()
                                    + "' was admitted to generation " + gen + ", which failed to form, and was left out "
                                    + "of generation " + generation + " (members " + members + ")");
                        }
                    }
                    return;
                }
            } else {
                List<Long> live = liveMembers();
                if (live.size() >= opts.minSize()) {
                    List<Long> first = live.subList(0, Math.min(live.size(), opts.maxSize()));
                    store.compareSet(base + "gen-0/members", null, encode(first));
                    store.compareSet(base + "gen", null, ascii(0));
                    continue;
                }
            }
            if (System.nanoTime() > deadline) {
                throw new StoreTimeoutException("member " + id + " of elastic run '" + opts.runId() + "' was not admitted: "
                        + (g == null ? "fewer than minSize " + opts.minSize() + " members came"
                        : "the job (generation " + parse(g) + ") did not admit it within " + opts.initTimeout().toMillis()
                        + " ms: it may be full (at its maxSize; this member's is " + opts.maxSize() + "), finished, or "
                        + "started with other bounds"));
            }
            sleep(opts.heartbeatPeriod().toMillis());
        }
    }

    /**
     * Collective step boundary: every member calls it at the same step. Returns the
     * change when the membership changed (the communicator is then the new one), null
     * when it did not. A failure of the boundary's own all-reduce is handled as {@link #recover}.
     */
    public MembershipChange boundary() {
        requireMember();
        // the heartbeat thread reads the store; the training thread does not, so a boundary with
        // nothing to do costs one tiny all-reduce, and a ZooKeeper outage does not slow training
        boolean pending = leaveRequested || pendingSeen;
        float any;
        try (Tensor flag = Tensor.fromArray(new float[] {pending ? 1f : 0f}, 1)) {
            comm.allReduce(flag, ReduceOp.MAX).await();
            any = flag.toFloatArray()[0];
        } catch (CommException e) {
            return recover(e);
        }
        return any == 0f ? null : rebuild(false, 0);
    }

    /**
     * After a collective failed (a member died or stalled): waits out the detection bound
     * watching heartbeats, drops the members whose heartbeat did not change, and rebuilds.
     * Every survivor calls it. The change has {@code failure() == true}: roll back.
     */
    public MembershipChange recover(Exception cause) {
        requireMember();
        for (Communicator sub : splits.values()) {
            sub.abort("elastic recovery after: " + cause);
        }
        comm.abort("elastic recovery after: " + cause);
        return recoverFrom(cause);
    }

    private MembershipChange recoverFrom(Exception cause) {
        long t0 = System.nanoTime();
        long end = t0 + opts.detectionBound().toNanos() + opts.heartbeatPeriod().toNanos();
        while (System.nanoTime() < end) {
            for (long m : members) {
                observe(m);
            }
            sleep(opts.heartbeatPeriod().toMillis());
        }
        return rebuild(true, (System.nanoTime() - t0) / 1_000_000);
    }

    private MembershipChange rebuild(boolean failure, long detectionMillis) {
        long t0 = System.nanoTime();
        List<Long> before = members;
        long genBefore = generation;
        Set<Long> leaving = ids(store.list(base + "leaving"));
        Set<Long> fenced = ids(store.list(base + "fenced"));
        List<Long> keep = new ArrayList<>();
        for (long m : before) {
            if (!leaving.contains(m) && (!failure || alive(m))) {
                keep.add(m);
            }
        }
        int survivors = keep.size();
        addJoiners(keep, before, leaving, fenced);
        boolean belowMin = !keep.isEmpty() && keep.size() < opts.minSize(); // none: everyone left, the job's end
        boolean leavingMyself = !keep.contains(id) && leaving.contains(id);
        if (belowMin && !leavingMyself) {
            waitForReplacements(keep, survivors, before, leaving, fenced);
        }
        long next = genBefore + 1;
        byte[] record;
        if (belowMin && leavingMyself) {
            // the stayers decide the next generation, after waiting for replacements; a leaver only leaves
            byte[] written = store.tryGet(base + "gen-" + next + "/members");
            record = written != null ? written : encodeRecord(keep, failure);
        } else {
            // the record says whether this generation follows a failure, so that every member rolls back alike
            record = store.compareSet(base + "gen-" + next + "/members", null, encodeRecord(keep, failure));
            raiseGeneration(next);
        }
        List<Long> agreed = decode(record);
        boolean agreedFailure = isFailureRecord(record);
        List<Long> left = new ArrayList<>(before);
        left.removeAll(agreed);
        for (long l : left) {
            if (!leaving.contains(l)) {
                store.set(base + "fenced/" + l, new byte[0]);
            }
        }
        if (comm != null) {
            closeSplits(agreedFailure);
            if (agreedFailure) {
                comm.abort("replaced by generation " + next);
            }
            comm.close();
            comm = null;
        }
        List<Long> joined = new ArrayList<>(agreed);
        joined.removeAll(before);
        if (!agreed.contains(id)) {
            generation = next;
            members = agreed;
            stopBeating(); // out of the job: stop looking alive, so nobody takes this process for a joiner
            return new MembershipChange(genBefore, next, before.size(), agreed.size(), joined, left, agreedFailure,
                    detectionMillis, (System.nanoTime() - t0) / 1_000_000);
        }
        try {
            faultPoint("rebuild");
            enter(next, agreed);
        } catch (CommException | StoreTimeoutException e) {
            // a member of the new generation died or stalled while it formed (its rendezvous record never
            // came, or its connection failed): recover into the one after; a failure that repeats with
            // every generation (not a dead member) must end, not recurse forever
            if (++formationFailures > MAX_FORMATION_FAILURES) {
                throw new CommException("elastic run '" + opts.runId() + "': " + formationFailures + " generations in a "
                        + "row failed to form (the last, " + next + ", with " + e + "); giving up", e);
            }
            generation = next;
            members = agreed;
            MembershipChange again = recoverFrom(e);
            return new MembershipChange(genBefore, again.generationAfter(), before.size(), again.worldAfter(),
                    again.joined(), again.left(), true, detectionMillis + again.detectionMillis(),
                    (System.nanoTime() - t0) / 1_000_000);
        }
        return new MembershipChange(genBefore, next, before.size(), agreed.size(), joined, left, agreedFailure,
                detectionMillis, (System.nanoTime() - t0) / 1_000_000);
    }

    private void addJoiners(List<Long> keep, List<Long> before, Set<Long> leaving, Set<Long> fenced) {
        for (long j : liveMembers()) {
            if (keep.size() >= opts.maxSize()) {
                break;
            }
            // an id that was ever left out never comes back: a fenced process that still runs is not a joiner
            if (!before.contains(j) && !leaving.contains(j) && !fenced.contains(j) && !keep.contains(j)) {
                keep.add(j);
            }
        }
    }

    /**
     * The job fell below minSize: announce it under {@code below-min} (launchers start replacements
     * when they see it) and wait up to joinTimeout for live joiners, or for another survivor to
     * write the next generation. Fails the job when none come.
     */
    private void waitForReplacements(List<Long> keep, int survivors, List<Long> before, Set<Long> leaving,
                                     Set<Long> fenced) {
        long t0 = System.nanoTime();
        long deadline = t0 + opts.joinTimeout().toNanos();
        String flag = base + "below-min";
        // ephemeral: a survivor killed while it waits must not leave a request for replacements behind
        store.setEphemeral(flag, ascii(keep.size()));
        try {
            while (keep.size() < opts.minSize()) {
                if (store.tryGet(base + "gen-" + (generation + 1) + "/members") != null) {
                    return; // another survivor got enough members and wrote the generation: take it
                }
                if (System.nanoTime() > deadline) {
                    throw new JobBelowMinimumException("elastic run '" + opts.runId() + "' has " + keep.size()
                            + " live member(s) " + keep + ", fewer than minSize " + opts.minSize() + ", and no replacement "
                            + "joined within joinTimeout (" + opts.joinTimeout().toMillis() + " ms)");
                }
                sleep(opts.heartbeatPeriod().toMillis());
                keep.subList(survivors, keep.size()).clear();
                addJoiners(keep, before, leaving, fenced);
            }
        } finally {
            try {
                store.delete(flag);
            } catch (RuntimeException e) {
                // the flag only asks for replacements; a stale one makes a launcher start one worker too many
            }
        }
    }

    private void enter(long gen, List<Long> m) {
        pendingSeen = false;
        int rank = m.indexOf(id);
        Communicator c = Communicator.builder().store(store).runId(opts.runId()).name("elastic-world").generation(gen)
                .rank(rank).size(m.size()).timeout(opts.opTimeout()).initTimeout(opts.initTimeout()).build();
        try {
            for (Map.Entry<String, SplitRule> e : splitRules.entrySet()) {
                SplitRule r = e.getValue();
                Communicator sub = c.split(r.color(rank, m.size()), r.key(rank, m.size()));
                if (sub != null) {
                    splits.put(e.getKey(), sub);
                }
            }
        } catch (RuntimeException e) {
            closeSplits(true);
            c.abort("a split of generation " + gen + " failed: " + e.getMessage());
            c.close();
            throw e;
        }
        comm = c;
        generation = gen;
        members = List.copyOf(m);
        formationFailures = 0;
    }

    private void closeSplits(boolean abort) {
        for (Communicator s : splits.values()) {
            if (abort) {
                s.abort("the elastic generation ended");
            }
            s.close();
        }
        splits.clear();
    }

    private void raiseGeneration(long next) {
        for (int i = 0; i < 100; i++) {
            byte[] cur = store.tryGet(base + "gen");
            long c = cur == null ? -1 : parse(cur);
            if (c >= next) {
                return;
            }
            store.compareSet(base + "gen", cur, ascii(next));
        }
        throw new StoreException("could not raise the generation of elastic run '" + opts.runId() + "' to " + next);
    }

    /** A join is pending (a live member outside the generation, room for it) or a member asked to leave. */
    private boolean changePending() {
        Set<Long> leaving = ids(store.list(base + "leaving"));
        if (leaving.stream().anyMatch(members::contains)) {
            return true;
        }
        if (members.size() >= opts.maxSize()) {
            return false;
        }
        Set<Long> fenced = ids(store.list(base + "fenced"));
        for (long m : liveMembers()) {
            if (!members.contains(m) && !leaving.contains(m) && !fenced.contains(m)) {
                return true;
            }
        }
        return false;
    }

    /** Registered members whose heartbeat this process has seen change within the detection bound, by id. */
    private List<Long> liveMembers() {
        List<Long> out = new ArrayList<>();
        for (long m : ids(store.list(base + "members"))) {
            observe(m);
            if (alive(m)) {
                out.add(m);
            }
        }
        return out;
    }

    private void observe(long m) {
        byte[] v = store.tryGet(base + "hb/" + m);
        long now = System.nanoTime();
        long value = v == null ? Long.MIN_VALUE : parse(v);
        long[] s = seen.get(m);
        if (s == null) {
            // a first sighting proves nothing (a killed process's keys outlive it until its session ends):
            // alive only once the counter is seen to change
            seen.put(m, new long[] {value, now - opts.detectionBound().toNanos() - 1});
        } else if (s[0] != value) {
            seen.put(m, new long[] {value, value == Long.MIN_VALUE ? now - opts.detectionBound().toNanos() - 1 : now});
        }
    }

    private boolean alive(long m) {
        long[] s = seen.get(m);
        return s != null && s[0] != Long.MIN_VALUE && System.nanoTime() - s[1] <= opts.detectionBound().toNanos();
    }

    private void beat() {
        long n = 0;
        while (!closed) {
            try {
                store.setEphemeral(base + "hb/" + id, ascii(++n));
                if (leaveRequested) {
                    store.set(base + "leaving/" + id, new byte[0]); // again: a rebuild may have raced the first write
                }
                watchMembers();
                List<Long> view = members;
                boolean p = comm != null && changePending();
                if (view == members) { // not a view of a generation that was replaced meanwhile
                    pendingSeen = p;
                }
            } catch (RuntimeException e) {
                // the store is away: the others judge us by what they see; no join can be admitted now
                pendingSeen = false;
            }
            try {
                Thread.sleep(opts.heartbeatPeriod().toMillis());
            } catch (InterruptedException e) {
                return; // closing
            }
        }
    }

    /**
     * The detection bound holds for stalled peers too, not only for closed connections: a
     * member of the current generation whose heartbeat has not changed for the bound gets
     * the communicator aborted, so the collective in flight fails now and recovery starts.
     */
    private void watchMembers() {
        Communicator c = comm;
        long g = generation;
        if (c == null || watchAbortedGeneration == g) {
            return;
        }
        for (long m : members) {
            if (m == id) {
                continue;
            }
            if (!seen.containsKey(m)) {
                // first look from this process (a joiner): the bound starts now
                byte[] v = store.tryGet(base + "hb/" + m);
                seen.put(m, new long[] {v == null ? Long.MIN_VALUE : parse(v), System.nanoTime()});
                continue;
            }
            observe(m);
            if (!alive(m)) {
                watchAbortedGeneration = g;
                String why = "member " + m + " of generation " + g + " sent no heartbeat for "
                        + opts.detectionBound().toMillis() + " ms";
                for (Communicator sub : splits.values()) {
                    sub.abort(why); // a collective on a sub-communicator may be the one stuck
                }
                c.abort(why);
                return;
            }
        }
    }

    private void stopBeating() {
        closed = true;
        heartbeat.interrupt();
        try {
            store.delete(base + "hb/" + id);
            store.delete(base + "members/" + id);
        } catch (RuntimeException e) {
            // ephemeral: the session's end removes them anyway
        }
    }

    /** Stops the heartbeat without leaving: what a frozen or killed process looks like to the others. Tests only. */
    void stopHeartbeatForTest() {
        closed = true;
        heartbeat.interrupt();
    }

    private void requireMember() {
        if (comm == null) {
            throw new StaleGenerationException("member " + id + " of elastic run '" + opts.runId() + "' is not in generation "
                    + generation + " (members " + members + "): it was left out and must exit");
        }
    }

    private static Set<Long> ids(List<String> keys) {
        Set<Long> out = new TreeSet<>();
        for (String k : keys) {
            if (k.matches("[0-9]{1,18}")) {
                out.add(Long.parseLong(k));
            }
        }
        return out;
    }

    private static byte[] encode(List<Long> ids) {
        StringBuilder sb = new StringBuilder();
        for (long i : ids) {
            sb.append(sb.length() == 0 ? "" : ",").append(i);
        }
        return sb.toString().getBytes(StandardCharsets.US_ASCII);
    }

    private static byte[] encodeRecord(List<Long> ids, boolean failure) {
        return (new String(encode(ids), StandardCharsets.US_ASCII) + (failure ? ";failure" : ""))
                .getBytes(StandardCharsets.US_ASCII);
    }

    private static boolean isFailureRecord(byte[] v) {
        return v != null && new String(v, StandardCharsets.US_ASCII).endsWith(";failure");
    }

    private static List<Long> decode(byte[] v) {
        if (v == null) {
            return null;
        }
        String s = new String(v, StandardCharsets.US_ASCII);
        int semi = s.indexOf(';');
        if (semi >= 0) {
            s = s.substring(0, semi);
        }
        List<Long> out = new ArrayList<>();
        if (!s.isEmpty()) {
            for (String p : s.split(",")) {
                out.add(parse(p.getBytes(StandardCharsets.US_ASCII)));
            }
        }
        return out;
    }

    private static long parse(byte[] v) {
        try {
            return Long.parseLong(new String(v, StandardCharsets.US_ASCII));
        } catch (NumberFormatException e) {
            throw new StoreException("malformed elastic membership value: expected ASCII decimal, got " + v.length
                    + " bytes");
        }
    }

    private static byte[] ascii(long v) {
        return Long.toString(v).getBytes(StandardCharsets.US_ASCII);
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(Math.max(1, ms));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CommException("interrupted in an elastic membership change");
        }
    }

    /** Leaves the group: stops the heartbeat, closes the communicator, removes this member's keys. */
    @Override
    public void close() {
        closed = true;
        heartbeat.interrupt();
        closeSplits(false);
        if (comm != null) {
            comm.close();
            comm = null;
        }
        try {
            store.delete(base + "members/" + id);
            store.delete(base + "hb/" + id);
            // a leave request stays: the others may still need to see it (ids are never reused)
        } catch (RuntimeException e) {
            // ephemeral: the session's end removes them anyway
        }
    }
}
