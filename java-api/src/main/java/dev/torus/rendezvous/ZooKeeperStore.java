package dev.torus.rendezvous;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.data.Stat;

/**
 * {@link Store} on a ZooKeeper ensemble through Apache Curator. Each key is a znode
 * below {@code /torus/<root>}; values are the znode's data.
 *
 * <p>The store owns its Curator client and closes it in {@link #close()}; it does
 * not own the ensemble. Connection loss is retried by Curator within the
 * operation's time bound and reported as a {@link StoreException} after that.
 * Authentication and TLS are configured the standard ZooKeeper way through system
 * properties (see docs/COLLECTIVES.md).
 */
public final class ZooKeeperStore implements Store {
    /** ZooKeeper rejects packets above {@code jute.maxbuffer} (1 MiB by default); stay well below it. */
    public static final int DEFAULT_MAX_VALUE_BYTES = 512 * 1024;

    private final CuratorFramework client;
    private final String connectString;
    private final String root;
    private final int maxValueBytes;

    private ZooKeeperStore(CuratorFramework client, String connectString, String root, int maxValueBytes) {
        this.client = client;
        this.connectString = connectString;
        this.root = root;
        this.maxValueBytes = maxValueBytes;
    }

    /** Connects to {@code connectString} (host:port[,host:port...]) with keys below {@code /torus/<root>}. */
    public static ZooKeeperStore connect(String connectString, String root, Duration connectTimeout) {
        return connect(connectString, root, connectTimeout, Duration.ofSeconds(10), DEFAULT_MAX_VALUE_BYTES);
    }

    /**
     * Full form. {@code sessionTimeout} bounds how long the ensemble keeps this client's
     * ephemeral nodes after it vanishes.
     */
    public static ZooKeeperStore connect(String connectString, String root, Duration connectTimeout,
                                         Duration sessionTimeout, int maxValueBytes) {
        if (connectString == null || connectString.isBlank()) {
            throw new IllegalArgumentException("connectString must be a ZooKeeper connect string like 'host:2181', got '"
                    + connectString + "'");
        }
        Keys.check("root", root);
        requirePositive("connectTimeout", connectTimeout);
        requirePositive("sessionTimeout", sessionTimeout);
        if (maxValueBytes <= 0 || maxValueBytes > 1000 * 1024) {
            throw new IllegalArgumentException("maxValueBytes must be in 1..1024000 (below ZooKeeper's jute.maxbuffer), got "
                    + maxValueBytes);
        }
        CuratorFramework client = CuratorFrameworkFactory.builder()
                .connectString(connectString)
                .namespace("torus")
                .sessionTimeoutMs((int) sessionTimeout.toMillis())
                .connectionTimeoutMs((int) connectTimeout.toMillis())
                .retryPolicy(new ExponentialBackoffRetry(50, 6, 1000))
                .build();
        client.start();
        boolean connected;
        try {
            connected = client.blockUntilConnected((int) connectTimeout.toMillis(), TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            connected = false;
        }
        if (!connected) {
            // Closing a client that never connected can block for its session timeout: do it
            // in the background, so that the caller's bound is the connect timeout alone.
            Thread closer = new Thread(client::close, "torus-zk-close");
            closer.setDaemon(true);
            closer.start();
            throw new StoreTimeoutException("could not connect to ZooKeeper at '" + connectString + "' within "
                    + connectTimeout.toMillis() + " ms; is the server running (TORUS_RDZV_ENDPOINT)?");
        }
        return new ZooKeeperStore(client, connectString, root, maxValueBytes);
    }

    private static void requirePositive(String name, Duration d) {
        if (d == null || d.isNegative() || d.isZero()) {
            throw new IllegalArgumentException(name + " must be a positive duration, got " + d);
        }
    }

    private String path(String key) {
        return "/" + root + "/" + Keys.check("key", key);
    }

    @Override
    public void set(String key, byte[] value) {
        String p = path(key);
        Keys.checkValue(key, value, maxValueBytes);
        run("set", key, () -> {
            while (true) {
                try {
                    client.setData().forPath(p, value);
                    return null;
                } catch (KeeperException.NoNodeException e) {
                    try {
                        client.create().creatingParentsIfNeeded().withMode(CreateMode.PERSISTENT).forPath(p, value);
                        return null;
                    } catch (KeeperException.NodeExistsException raced) {
                        // someone created it between our two calls; overwrite
                    }
                }
            }
        });
    }

    @Override
    public byte[] tryGet(String key) {
        String p = path(key);
        return run("get", key, () -> {
            try {
                return client.getData().forPath(p);
            } catch (KeeperException.NoNodeException e) {
                return null;
            }
        });
    }

    @Override
    public byte[] get(String key, Duration timeout) {
        requirePositive("timeout", timeout);
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            byte[] v = tryGet(key);
            if (v != null) {
                return v;
            }
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                throw new StoreTimeoutException("key '" + key + "' did not appear within " + timeout.toMillis() + " ms");
            }
            wait(List.of(key), Duration.ofNanos(left));
        }
    }

    @Override
    public long add(String key, long delta) {
        String p = path(key);
        return run("add", key, () -> {
            while (true) {
                Stat stat = new Stat();
                byte[] cur;
                try {
                    cur = client.getData().storingStatIn(stat).forPath(p);
                } catch (KeeperException.NoNodeException e) {
                    try {
                        client.create().creatingParentsIfNeeded().forPath(p, ascii(delta));
                        return delta;
                    } catch (KeeperException.NodeExistsException raced) {
                        continue;
                    }
                }
                long next = Keys.parseCounter(key, cur) + delta;
                try {
                    client.setData().withVersion(stat.getVersion()).forPath(p, ascii(next));
                    return next;
                } catch (KeeperException.BadVersionException raced) {
                    // another writer won; retry on the fresh value
                }
            }
        });
    }

    private static byte[] ascii(long v) {
        return Long.toString(v).getBytes(StandardCharsets.US_ASCII);
    }

    @Override
    public byte[] compareSet(String key, byte[] expected, byte[] desired) {
        String p = path(key);
        Keys.checkValue(key, desired, maxValueBytes);
        return run("compareSet", key, () -> {
            while (true) {
                Stat stat = new Stat();
                byte[] cur;
                try {
                    cur = client.getData().storingStatIn(stat).forPath(p);
                } catch (KeeperException.NoNodeException e) {
                    if (expected != null) {
                        return null;
                    }
                    try {
                        client.create().creatingParentsIfNeeded().forPath(p, desired);
                        return desired.clone();
                    } catch (KeeperException.NodeExistsException raced) {
                        continue;
                    }
                }
                if (expected == null || !Arrays.equals(cur, expected)) {
                    return cur;
                }
                try {
                    client.setData().withVersion(stat.getVersion()).forPath(p, desired);
                    return desired.clone();
                } catch (KeeperException.BadVersionException | KeeperException.NoNodeException raced) {
                    // changed under us; re-read
                }
            }
        });
    }

    @Override
    public void wait(List<String> keys, Duration timeout) {
        requirePositive("timeout", timeout);
        if (keys == null) {
            throw new IllegalArgumentException("keys must not be null");
        }
        long deadline = System.nanoTime() + timeout.toNanos();
        List<String> missing = new ArrayList<>();
        for (String key : keys) {
            String p = path(key);
            while (true) {
                CountDownLatch created = new CountDownLatch(1);
                Stat stat = run("wait", key, () -> client.checkExists()
                        .usingWatcher((org.apache.curator.framework.api.CuratorWatcher) ev -> created.countDown())
                        .forPath(p));
                if (stat != null) {
                    break;
                }
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    missing.add(key);
                    break;
                }
                try {
                    // wake at least every 500 ms so a lost watch cannot stall us
                    created.await(Math.min(left, TimeUnit.MILLISECONDS.toNanos(500)), TimeUnit.NANOSECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new StoreException("interrupted while waiting for key '" + key + "'");
                }
            }
        }
        if (!missing.isEmpty()) {
            throw new StoreTimeoutException("keys " + missing + " did not appear within " + timeout.toMillis()
                    + " ms (store " + this + ")");
        }
    }

    @Override
    public boolean delete(String key) {
        String p = path(key);
        return run("delete", key, () -> {
            try {
                client.delete().deletingChildrenIfNeeded().forPath(p);
                return true;
            } catch (KeeperException.NoNodeException e) {
                return false;
            }
        });
    }

    @Override
    public List<String> list(String key) {
        String p = path(key);
        return run("list", key, () -> {
            try {
                List<String> children = new ArrayList<>(client.getChildren().forPath(p));
                children.sort(null);
                return children;
            } catch (KeeperException.NoNodeException e) {
                return List.of();
            }
        });
    }

    /** Creates an ephemeral node that disappears when this store's session ends (liveness marker). */
    public void setEphemeral(String key, byte[] value) {
        String p = path(key);
        Keys.checkValue(key, value, maxValueBytes);
        run("setEphemeral", key, () -> {
            client.create().orSetData().creatingParentsIfNeeded().withMode(CreateMode.EPHEMERAL).forPath(p, value);
            return null;
        });
    }

    @Override
    public int maxValueBytes() {
        return maxValueBytes;
    }

    /** The connect string this store was opened with. */
    public String connectString() {
        return connectString;
    }

    @Override
    public void close() {
        client.close();
    }

    @Override
    public String toString() {
        return "zookeeper://" + connectString + "/torus/" + root;
    }

    private interface Op<T> {
        T call() throws Exception;
    }

    private <T> T run(String op, String key, Op<T> body) {
        try {
            return body.call();
        } catch (StoreException | IllegalArgumentException e) {
            throw e;
        } catch (KeeperException e) {
            throw new StoreException("store " + op + " of key '" + key + "' failed: " + e.getMessage(), e);
        } catch (IllegalStateException e) {
            throw new IllegalStateException("store " + this + " is closed (during " + op + " of key '" + key + "')", e);
        } catch (Exception e) {
            throw new StoreException("store " + op + " of key '" + key + "' failed: " + e, e);
        }
    }
}
