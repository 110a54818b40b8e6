package dev.torus.cli.launch;

import dev.torus.rendezvous.JobSecret;
import dev.torus.zookeeper.ZooKeeperStore;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;

/**
 * The runs of one job secret on an external ensemble, so that stale ones can be found
 * without listing anyone else's:
 *
 * <pre>
 * index/&lt;secret fingerprint&gt;/&lt;run&gt;                "attempts=&lt;n&gt;", rewritten at each attempt
 * index/&lt;secret fingerprint&gt;/&lt;run&gt;/alive-&lt;id&gt;     ephemeral: a launcher of the run still lives
 * </pre>
 *
 * A launcher registers its run at start and, before that, sweeps the runs of its secret
 * that have no live launcher and no write for longer than the stale-run age: their
 * {@code runs/<run>} keys (every restart's namespace) and their index entry are deleted.
 * Only holders of the secret can see or delete them (job ACLs). Runs whose launcher
 * ended normally were already removed by it.
 */
final class RunIndex {
    private RunIndex() {}

    private static String base(JobSecret secret) {
        return "index/" + secret.fingerprint();
    }

    /** A liveness marker name for this launcher. */
    static String markerName() {
        return "alive-" + ProcessHandle.current().pid() + "-" + Long.toString(System.nanoTime() & 0xffffff, 36);
    }

    /**
     * Records {@code runId} with its attempt count (which also refreshes its last-write
     * time) and this launcher's liveness marker {@code marker}, created again if a lost
     * session took it. Called at start, at each attempt and periodically while it runs.
     */
    static void register(ZooKeeperStore store, JobSecret secret, String runId, int attempts, String marker) {
        String key = base(secret) + "/" + runId;
        store.set(key, ("attempts=" + attempts).getBytes(StandardCharsets.US_ASCII));
        store.setEphemeral(key + "/" + marker, new byte[0]);
    }

    /** How many launchers other than the one with {@code ownMarker} hold a liveness marker for {@code runId}. */
    static long liveLaunchers(ZooKeeperStore store, JobSecret secret, String runId, String ownMarker) {
        return store.list(base(secret) + "/" + runId).stream()
                .filter(c -> c.startsWith("alive-") && !c.equals(ownMarker)).count();
    }

    /** The attempt count recorded for {@code runId} (1 when there is no entry). */
    static int attempts(ZooKeeperStore store, JobSecret secret, String runId) {
        return attempts(store.tryGet(base(secret) + "/" + runId));
    }

    /** Deletes the index entry of a run that ended (its keys are deleted by the caller). */
    static void remove(ZooKeeperStore store, JobSecret secret, String runId) {
        store.delete(base(secret) + "/" + runId);
    }

    /** Deletes the stale runs of {@code secret} as described above; returns their ids. */
    static List<String> sweep(ZooKeeperStore store, JobSecret secret, Duration staleAge, String currentRun,
                              PrintStream log) {
        List<String> swept = new ArrayList<>();
        Instant cutoff = Instant.now().minus(staleAge);
        for (String run : store.list(base(secret))) {
            if (run.equals(currentRun)) {
                continue;
            }
            String key = base(secret) + "/" + run;
            Instant modified = store.modified(key);
            boolean alive = store.list(key).stream().anyMatch(c -> c.startsWith("alive-"));
            if (modified == null || alive || modified.isAfter(cutoff)) {
                continue;
            }
            int attempts = attempts(store.tryGet(key));
            for (int a = 0; a < attempts; a++) {
                store.delete("runs/" + (a == 0 ? run : run + "-restart" + a));
            }
            store.delete(key);
            swept.add(run);
            log.println("torusrun: removed stale run " + run + " (no launcher alive, last written " + modified + ")");
        }
        return swept;
    }

    private static int attempts(byte[] v) {
        String s = v == null ? "" : new String(v, StandardCharsets.US_ASCII);
        if (s.startsWith("attempts=")) {
            try {
                return Math.max(1, Math.min(1000, Integer.parseInt(s.substring("attempts=".length()).trim())));
            } catch (NumberFormatException e) {
                // fall through: at least the first namespace goes
            }
        }
        return 1;
    }
}
