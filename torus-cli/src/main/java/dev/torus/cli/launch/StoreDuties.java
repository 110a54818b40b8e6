package dev.torus.cli.launch;

import dev.torus.zookeeper.ZooKeeperStore;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

/**
 * What a launcher on an external ensemble does with the store while its workers run,
 * kept off the thread that watches the workers: a ZooKeeper outage must neither stop a
 * healthy job nor delay the notice of a local failure. A daemon thread polls, every
 * 0.5 s, whether another node of a multi-node job reported a failure, and rewrites the
 * run's index entry every 10 minutes; store errors are logged when the store becomes
 * unreachable and when it is back, never thrown. Writes the launcher must make
 * (reporting a failure, removing the run's keys) run on another thread and are
 * abandoned after their bound. Owned by the launcher, which closes it.
 */
final class StoreDuties implements AutoCloseable {
    private static final long POLL_MILLIS = 500;
    private static final long INDEX_REFRESH_NANOS = TimeUnit.MINUTES.toNanos(10);

    private final ZooKeeperStore store;
    private final boolean multiNode;
    private final Runnable refreshIndex;
    private final PrintStream log;
    private final ExecutorService writes = Executors.newCachedThreadPool(r -> {
        Thread t = new Thread(r, "torusrun-store-write");
        t.setDaemon(true);
        return t;
    });
    private final Thread poller;
    private volatile String failedKey;
    private volatile Integer otherNodeFailed;
    private volatile boolean closed;

    StoreDuties(ZooKeeperStore store, boolean multiNode, Runnable refreshIndex, PrintStream log) {
        this.store = store;
        this.multiNode = multiNode;
        this.refreshIndex = refreshIndex;
        this.log = log;
        this.poller = new Thread(this::poll, "torusrun-store-poll");
        poller.setDaemon(true);
        poller.start();
    }

    /** The failure key of the attempt now running; clears an earlier attempt's notice. */
    void watchAttempt(String key) {
        otherNodeFailed = null;
        failedKey = key;
    }

    /** The rank another node reported as failed in this attempt (-1 when unreadable), or null. */
    Integer otherNodeFailed() {
        return otherNodeFailed;
    }

    /** Tells the other nodes that {@code rank} failed here: first report wins; gives up after {@code millis}. */
    void reportFailure(int rank, long millis) {
        String key = failedKey;
        if (!multiNode || key == null) {
            return;
        }
        bounded(() -> store.compareSet(key, null, Integer.toString(rank).getBytes(StandardCharsets.US_ASCII)), millis,
                "report the failure of rank " + rank + " to the other nodes");
    }

    /** Runs {@code call} on another thread for at most {@code millis}; logs and returns null on failure. */
    <T> T bounded(Callable<T> call, long millis, String what) {
        Future<T> f = writes.submit(call);
        try {
            return f.get(millis, TimeUnit.MILLISECONDS);
        } catch (java.util.concurrent.TimeoutException e) {
            f.cancel(true);
            log.println("torusrun: could not " + what + " within " + millis + " ms (is ZooKeeper reachable?)");
        } catch (java.util.concurrent.ExecutionException e) {
            log.println("torusrun: could not " + what + ": " + e.getCause().getMessage());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        return null;
    }

    private void poll() {
        boolean reachable = true;
        long lastRefresh = System.nanoTime();
        while (!closed) {
            try {
                String key = failedKey;
                if (multiNode && key != null && otherNodeFailed == null) {
                    byte[] v = store.tryGet(key);
                    if (v != null) {
                        otherNodeFailed = parseRank(v);
                    }
                }
                if (System.nanoTime() - lastRefresh > INDEX_REFRESH_NANOS) {
                    refreshIndex.run();
                    lastRefresh = System.nanoTime();
                }
                if (!reachable) {
                    log.println("torusrun: the store is reachable again");
                    reachable = true;
                }
            } catch (RuntimeException e) {
                if (reachable && !closed) {
                    log.println("torusrun: the store is unreachable (" + e.getMessage() + "); the workers go on, and "
                            + "failures on other nodes are noticed once it is back");
                    reachable = false;
                }
            }
            try {
                Thread.sleep(POLL_MILLIS);
            } catch (InterruptedException e) {
                return;
            }
        }
    }

    /** A rank as the other node wrote it; anything else (a value nobody with the secret writes) is -1. */
    private static int parseRank(byte[] v) {
        String s = new String(v, StandardCharsets.US_ASCII);
        return s.matches("[0-9]{1,9}") ? Integer.parseInt(s) : -1;
    }

    @Override
    public void close() {
        closed = true;
        poller.interrupt();
        writes.shutdownNow();
    }
}
