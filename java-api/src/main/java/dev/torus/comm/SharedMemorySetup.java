package dev.torus.comm;

import static dev.torus.internal.NativeAccess.TOKEN;

import dev.torus.DType;
import dev.torus.jni.GlooNative;
import dev.torus.memory.Allocator;
import dev.torus.memory.HostBuffer;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Sets up the shared-memory transport of one Gloo communicator generation, right after
 * its connect. Every rank runs the same steps and sees the same status all-gathers, so
 * the outcome (shared memory or not) is the same on every rank:
 * <ol>
 *   <li>each host's leader (its lowest rank) removes stale segments of earlier
 *       generations of this communicator, then creates this generation's;</li>
 *   <li>the other ranks of the host open it;</li>
 *   <li>every local rank checks that all attached and watches its peers' pids; the leader
 *       removes the name, so that no name outlives the setup, even if a rank is killed
 *       later;</li>
 *   <li>with ranks on several hosts, the hosts' leaders connect a second Gloo context
 *       among themselves for the cross-host part.</li>
 * </ol>
 * Under {@link Transport#AUTO} any failure falls back to Gloo for every rank (logged);
 * under {@link Transport#SHM} it is an error on every rank.
 */
final class SharedMemorySetup {
    private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(SharedMemorySetup.class);

    /** Bytes per local rank and bank of the segment; {@code TORUS_SHM_SLOT_BYTES} overrides it. */
    static final long DEFAULT_SLOT_BYTES = 2L * 1024 * 1024;

    /**
     * The outcome. {@code hostOf[r]} is rank r's host index (hosts numbered by their lowest
     * rank), {@code localOf[r]} its index among its host's ranks.
     */
    record Layout(String inUse, boolean hierarchical, int[] hostOf, int[] localOf) {
        static Layout gloo() {
            return new Layout("gloo", false, null, null);
        }

        boolean shm() {
            return !inUse.equals("gloo");
        }
    }

    private SharedMemorySetup() {}

    static long slotBytes() {
        String v = System.getenv("TORUS_SHM_SLOT_BYTES");
        if (v == null || v.isBlank()) {
            return DEFAULT_SLOT_BYTES;
        }
        long b;
        try {
            b = Long.parseLong(v.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("environment variable TORUS_SHM_SLOT_BYTES must be an integer, got '" + v
                    + "'");
        }
        if (b < 4096 || b % 4096 != 0 || b > (1L << 30)) {
            throw new IllegalArgumentException("environment variable TORUS_SHM_SLOT_BYTES must be a multiple of 4096 in "
                    + "[4096, 1 GiB], got " + b);
        }
        return b;
    }

    /** The segment name's prefix for every generation of this communicator. */
    static String prefix(CommSpec spec) {
        return prefix(spec.runId(), spec.name());
    }

    /** The segment name's prefix for every generation of communicator {@code name} of run {@code runId}. */
    static String prefix(String runId, String name) {
        long h = 1125899906842597L;
        for (byte b : (runId + "\u0000" + name).getBytes(StandardCharsets.UTF_8)) {
            h = 31 * h + b;
        }
        return "/torus-" + Long.toHexString(h) + "-";
    }

    static Layout attach(CommSpec spec, NativeHandle handle, byte[][] hostIds, long[] nonces, long deadline) {
        int n = spec.size();
        if (spec.transport() == Transport.GLOO || n == 1) {
            return Layout.gloo();
        }
        // hosts in order of their lowest rank
        Map<String, List<Integer>> hosts = new LinkedHashMap<>();
        for (int r = 0; r < n; r++) {
            hosts.computeIfAbsent(Arrays.toString(hostIds[r]), k -> new ArrayList<>()).add(r);
        }
        int[] hostOf = new int[n];
        int[] localOf = new int[n];
        List<int[]> groups = new ArrayList<>();
        for (List<Integer> ranks : hosts.values()) {
            int[] g = ranks.stream().mapToInt(Integer::intValue).toArray();
            for (int i = 0; i < g.length; i++) {
                hostOf[g[i]] = groups.size();
                localOf[g[i]] = i;
            }
            groups.add(g);
        }
        boolean anyShared = groups.stream().anyMatch(g -> g.length > 1);
        if (!anyShared) {
            if (spec.transport() == Transport.SHM) {
                throw new CommException("TORUS_TRANSPORT=shm, but no two ranks of " + spec + " share a host (" + n
                        + " ranks on " + groups.size() + " hosts): use auto or gloo");
            }
            return Layout.gloo();
        }
        if (groups.size() > 1 && groups.size() > 64) {
            return fallback(spec, handle, "more than 64 hosts");
        }
        int me = spec.rank();
        int[] group = groups.get(hostOf[me]);
        boolean leader = localOf[me] == 0;
        boolean shared = group.length > 1;
        long slot = slotBytes();
        String name = prefix(spec) + spec.generation() + "-" + Long.toHexString(nonces[group[0]]);
        try (HostBuffer status = Allocator.defaultAllocator().allocateHost(16L * n)) {
            // 1: the leader creates
            String mine = null;
            if (shared && leader) {
                GlooNative.torus_gloo_shm_unlink_stale(prefix(spec), spec.generation());
                mine = open(handle, name, true, localOf[me], group, slot);
            }
            String failed = agree(spec, handle, status, mine, 1, deadline);
            // 2: the others open
            if (failed == null && shared && !leader) {
                mine = open(handle, name, false, localOf[me], group, slot);
            }
            failed = failed != null ? failed : agree(spec, handle, status, mine, 2, deadline);
            // 3: everyone checks, the leader removes the name
            if (failed == null && shared) {
                int s = handle.use("shm ready", h -> GlooNative.torus_gloo_shm_ready(h));
                mine = s == GlooNative.OK ? null : GlooNative.torus_gloo_last_error();
                if (leader) {
                    handle.use("shm unlink", h -> GlooNative.torus_gloo_shm_unlink(h));
                }
            }
            failed = failed != null ? failed : agree(spec, handle, status, mine, 3, deadline);
            // 4: the leaders' context across hosts
            if (failed == null && groups.size() > 1) {
                mine = crossContext(spec, handle, groups, hostOf[me], leader, deadline);
                failed = agree(spec, handle, status, mine, 4, deadline);
            } else if (failed == null) {
                handle.use("shm layout", h -> GlooNative.torus_gloo_shm_set_layout(h, 0, leader ? 1 : 0, 0, 0L));
            }
            if (failed != null) {
                return fallback(spec, handle, failed);
            }
        }
        boolean hierarchical = groups.size() > 1;
        String inUse = hierarchical ? "shm+gloo" : "shm";
        LOG.debug("rank {}: {} transport, {} ranks on {} host(s)", me, inUse, n, groups.size());
        return new Layout(inUse, hierarchical, hostOf, localOf);
    }

    /** Opens (or creates) the segment; null when it worked, else the native detail. */
    private static String open(NativeHandle handle, String name, boolean create, int local, int[] group, long slot) {
        int s = handle.use("shm open", h -> GlooNative.torus_gloo_shm_open(h, name, create ? 1 : 0, local, group,
                group.length, slot));
        return s == GlooNative.OK ? null : GlooNative.torus_gloo_last_error();
    }

    /**
     * All-gathers each rank's outcome of a setup step over the Gloo connections (a failed
     * rank sends 1, others 0). Returns null when every rank succeeded, else which ranks
     * failed, with this rank's own detail when it is one of them.
     */
    private static String agree(CommSpec spec, NativeHandle handle, HostBuffer status, String mine, int step,
                                long deadline) {
        int n = spec.size();
        ByteBuffer v = status.view(0, 16L * n).order(ByteOrder.nativeOrder());
        v.putLong(8 * n, mine == null ? 0 : 1);
        long timeoutMs = Math.max(1, (deadline - System.nanoTime()) / 1_000_000L);
        int s = handle.use("shm setup", h -> GlooNative.torus_gloo_allgather(h, status.address(TOKEN) + 8L * n,
                status.address(TOKEN), 1, DType.INT64.code(), timeoutMs, (int) Fingerprint.exchangeTag(step)));
        GlooCommunicator.check(s, "shared-memory setup step " + step + " of rank " + spec.rank() + " of " + spec);
        List<Integer> bad = new ArrayList<>();
        for (int r = 0; r < n; r++) {
            if (v.getLong(8 * r) != 0) {
                bad.add(r);
            }
        }
        if (bad.isEmpty()) {
            return null;
        }
        return "setup step " + step + " failed on rank(s) " + bad + (mine != null ? "; here: " + mine : "");
    }

    /**
     * The leaders' Gloo context: created by each leader, addresses exchanged through the
     * store (every rank takes part; non-leaders publish an empty record), connected by the
     * leaders. Null when it worked on this rank, else the detail.
     */
    private static String crossContext(CommSpec spec, NativeHandle handle, List<int[]> groups, int host, boolean leader,
                                       long deadline) {
        int hosts = groups.size();
        long[] cross = new long[1];
        byte[] record = new byte[0];
        int per = 0;
        String err = null;
        if (leader) {
            long left = Math.max(1, (deadline - System.nanoTime()) / 1_000_000L);
            int s = GlooNative.torus_gloo_create(host, hosts, spec.hostname(), left, cross);
            if (s != GlooNative.OK) {
                err = "cross-host context: " + GlooNative.torus_gloo_last_error();
            } else {
                long[] ab = new long[1];
                GlooNative.torus_gloo_address_bytes(cross[0], ab);
                per = (int) ab[0];
                record = new byte[per * hosts];
                if (GlooNative.torus_gloo_local_addresses(cross[0], record, record.length) != GlooNative.OK) {
                    err = "cross-host addresses: " + GlooNative.torus_gloo_last_error();
                }
            }
        }
        try {
            byte[][] all = Rendezvous.exchange(spec, "gloo-cross-addr", err == null ? record : new byte[0], deadline);
            if (!leader) {
                return null;
            }
            if (err != null) {
                return err;
            }
            byte[] remote = new byte[per * hosts];
            for (int h = 0; h < hosts; h++) {
                if (h == host) {
                    continue;
                }
                byte[] theirs = all[groups.get(h)[0]];
                if (theirs.length != per * hosts) {
                    return "the cross-host address record of rank " + groups.get(h)[0] + " has " + theirs.length
                            + " bytes, expected " + per * hosts;
                }
                System.arraycopy(theirs, host * per, remote, h * per, per);
            }
            // the same one deadline as the main context's connect: a connect still running then is aborted
            long c0 = cross[0];
            java.util.concurrent.ScheduledFuture<?> timer = GlooCommunicator.INIT_TIMER.schedule(
                    () -> GlooNative.torus_gloo_abort(c0, "cross-host connect did not finish within initTimeout"),
                    Math.max(0, deadline - System.nanoTime()), java.util.concurrent.TimeUnit.NANOSECONDS);
            int s = GlooNative.torus_gloo_connect(cross[0], remote, remote.length);
            if (!timer.cancel(false)) {
                // the abort ran or is running: wait for it before the context can be destroyed below
                try {
                    timer.get();
                } catch (Exception ignored) {
                    // it ran; its outcome does not matter
                }
                return "cross-host connect did not finish within initTimeout (" + spec.initTimeout().toMillis() + " ms)";
            }
            if (s != GlooNative.OK) {
                return "cross-host connect: " + GlooNative.torus_gloo_last_error();
            }
            long c = cross[0];
            s = handle.use("shm layout", h -> GlooNative.torus_gloo_shm_set_layout(h, 1, 1, host, c));
            if (s != GlooNative.OK) {
                return "cross-host layout: " + GlooNative.torus_gloo_last_error();
            }
            cross[0] = 0; // owned by the communicator now
            return null;
        } finally {
            if (cross[0] != 0) {
                GlooNative.torus_gloo_destroy(cross[0]);
            }
            if (!leader) {
                handle.use("shm layout", h -> GlooNative.torus_gloo_shm_set_layout(h, 1, 0, host, 0L));
            }
        }
    }

    private static Layout fallback(CommSpec spec, NativeHandle handle, String why) {
        handle.use("shm close", h -> GlooNative.torus_gloo_shm_close(h));
        if (spec.transport() == Transport.SHM) {
            throw new CommException("TORUS_TRANSPORT=shm: the shared-memory transport of " + spec + " could not be set "
                    + "up: " + why);
        }
        LOG.warn("rank {}: shared-memory transport not used ({}); every collective of {} goes over Gloo", spec.rank(),
                why, spec);
        return Layout.gloo();
    }
}
