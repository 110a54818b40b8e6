package dev.torus.zookeeper;

import dev.torus.rendezvous.Store;
import dev.torus.rendezvous.Keys;
import dev.torus.rendezvous.JobSecret;
import dev.torus.rendezvous.StoreException;
import dev.torus.rendezvous.StoreTimeoutException;
import dev.torus.rendezvous.StoreAuthException;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.AuthInfo;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.api.ACLProvider;
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
 * operation's time bound and reported as a {@link StoreException} after that; a
 * refusal for lack of authorization is a {@link StoreAuthException}. Credentials and
 * ACLs come from the {@link #builder builder} (a job secret, or an ensemble's own
 * scheme); TLS is configured the standard ZooKeeper way through system properties
 * (see docs/COLLECTIVES.md).
 */
public final class ZooKeeperStore implements Store {
    /** ZooKeeper rejects packets above {@code jute.maxbuffer} (1 MiB by default); stay well below it. */
    public static final int DEFAULT_MAX_VALUE_BYTES = 512 * 1024;

    private final CuratorFramework client;
    private final String connectString;
    private final String root;
    private final int maxValueBytes;

    private static final String NAMESPACE = "torus";

    private final JobSecret secret;
    private final boolean authenticated;

    private final ACLProvider acl;
    /** Top nodes (e.g. {@code runs/<run>}) whose ACL was found to be the expected one. */
    private final java.util.Set<String> verifiedTops = java.util.concurrent.ConcurrentHashMap.newKeySet();

    private ZooKeeperStore(CuratorFramework client, String connectString, String root, int maxValueBytes,
                           JobSecret secret, boolean authenticated, ACLProvider acl) {
        this.acl = acl;
        this.client = client;
        this.connectString = connectString;
        this.root = root;
        this.maxValueBytes = maxValueBytes;
        this.secret = secret;
        this.authenticated = authenticated;
    }

    /** The job secret this store authenticates with, or null. */
    @Override
    public JobSecret jobSecret() {
        return secret;
    }

    /** Connects to {@code connectString} (host:port[,host:port...]) with keys below {@code /torus/<root>}, unauthenticated. */
    public static ZooKeeperStore connect(String connectString, String root, Duration connectTimeout) {
        return builder(connectString).root(root).connectTimeout(connectTimeout).build();
    }

    /**
     * Full unauthenticated form. {@code sessionTimeout} bounds how long the ensemble keeps
     * this client's ephemeral nodes after it vanishes.
     */
    public static ZooKeeperStore connect(String connectString, String root, Duration connectTimeout,
                                         Duration sessionTimeout, int maxValueBytes) {
        return builder(connectString).root(root).connectTimeout(connectTimeout).sessionTimeout(sessionTimeout)
                .maxValueBytes(maxValueBytes).build();
    }

    /** A builder for a store on {@code connectString}: the way to set credentials and ACLs. */
    public static Builder builder(String connectString) {
        return new Builder(connectString);
    }

    /**
     * Options of a {@link ZooKeeperStore}. With a {@link #jobSecret job secret} the client
     * authenticates with the job's digest credential and every znode it creates belongs to
     * that credential alone (see docs/COLLECTIVES.md, "Rendezvous security"); with
     * {@link #authorization} and {@link #aclProvider} it uses whatever an external
     * ensemble's administrator set up (SASL, x509, another digest user).
     */
    public static final class Builder {
        private final String connectString;
        private String root = "store";
        private Duration connectTimeout = Duration.ofSeconds(10);
        private Duration sessionTimeout = Duration.ofSeconds(10);
        private int maxValueBytes = DEFAULT_MAX_VALUE_BYTES;
        private JobSecret secret;
        private final List<AuthInfo> auth = new ArrayList<>();
        private ACLProvider aclProvider;

        private Builder(String connectString) {
            if (connectString == null || connectString.isBlank()) {
                throw new IllegalArgumentException("connectString must be a ZooKeeper connect string like 'host:2181', got '"
                        + connectString + "'");
            }
            this.connectString = connectString;
        }

        /** Keys live below {@code /torus/<root>} (default {@code store}). */
        public Builder root(String root) {
            this.root = Keys.check("root", root);
            return this;
        }

        public Builder connectTimeout(Duration d) {
            requirePositive("connectTimeout", d);
            this.connectTimeout = d;
            return this;
        }

        /** How long the ensemble keeps this client's ephemeral nodes after it vanishes. */
        public Builder sessionTimeout(Duration d) {
            requirePositive("sessionTimeout", d);
            this.sessionTimeout = d;
            return this;
        }

        public Builder maxValueBytes(int max) {
            if (max <= 0 || max > 1000 * 1024) {
                throw new IllegalArgumentException("maxValueBytes must be in 1..1024000 (below ZooKeeper's jute.maxbuffer), got "
                        + max);
            }
            this.maxValueBytes = max;
            return this;
        }

        /** Authenticate with the job's digest credential and create every key under the job's ACL. */
        public Builder jobSecret(JobSecret secret) {
            if (secret == null) {
                throw new IllegalArgumentException("secret must not be null");
            }
            this.secret = secret;
            return this;
        }

        /** An extra credential, e.g. {@code ("digest", "admin:pw")} or an ensemble's own scheme. */
        public Builder authorization(String scheme, byte[] credential) {
            if (scheme == null || scheme.isBlank() || credential == null) {
                throw new IllegalArgumentException("authorization needs a scheme like 'digest' and a credential, got scheme '"
                        + scheme + "'" + (credential == null ? " and a null credential" : ""));
            }
            auth.add(new AuthInfo(scheme, credential.clone()));
            return this;
        }

        /** The ACLs of created znodes; overrides the job ACL of {@link #jobSecret}. */
        public Builder aclProvider(ACLProvider provider) {
            if (provider == null) {
                throw new IllegalArgumentException("aclProvider must not be null");
            }
            this.aclProvider = provider;
            return this;
        }

        /**
         * Fails at once, naming them, when no host of the connect string resolves: a
         * misspelled name would otherwise surface only as retries until the connect timeout.
         */
        private void checkHostsResolve() {
            String hosts = connectString;
            int chroot = hosts.indexOf('/');
            if (chroot >= 0) {
                hosts = hosts.substring(0, chroot);
            }
            List<String> names = new ArrayList<>();
            for (String hp : hosts.split(",")) {
                String h = hp.trim();
                int colon = h.lastIndexOf(':');
                if (colon > 0 && !h.endsWith("]")) {
                    String port = h.substring(colon + 1);
                    int n;
                    try {
                        n = Integer.parseInt(port);
                    } catch (NumberFormatException e) {
                        n = -1;
                    }
                    if (n < 1 || n > 65535) {
                        throw new IllegalArgumentException("connectString '" + connectString + "': port '" + port
                                + "' of '" + h + "' must be a number in [1, 65535]");
                    }
                    h = h.substring(0, colon);
                }
                names.add(h.replace("[", "").replace("]", ""));
            }
            for (String h : names) {
                try {
                    java.net.InetAddress.getAllByName(h);
                    return; // one reachable name is enough for ZooKeeper to start with
                } catch (java.net.UnknownHostException e) {
                    // try the next one
                }
            }
            throw new IllegalArgumentException("connectString '" + connectString + "': no host resolves (" + names
                    + "); is the name misspelled?");
        }

        public ZooKeeperStore build() {
            checkHostsResolve();
            List<AuthInfo> all = new ArrayList<>();
            if (secret != null) {
                all.add(new AuthInfo("digest", secret.digestAuth()));
            }
            all.addAll(auth);
            ACLProvider acl = aclProvider != null ? aclProvider
                    : secret != null ? new JobAcl(secret, NAMESPACE, root) : null;
            return open(this, all, acl);
        }
    }

    private static ZooKeeperStore open(Builder b, List<AuthInfo> auth, ACLProvider acl) {
        CuratorFrameworkFactory.Builder cb = CuratorFrameworkFactory.builder()
                .connectString(b.connectString)
                .sessionTimeoutMs((int) b.sessionTimeout.toMillis())
                .connectionTimeoutMs((int) b.connectTimeout.toMillis())
                .retryPolicy(new ExponentialBackoffRetry(50, 6, 1000));
        if (!auth.isEmpty()) {
            cb.authorization(auth);
        }
        if (acl != null) {
            cb.aclProvider(acl);
        }
        CuratorFramework client = cb.build();
        client.start();
        Duration connectTimeout = b.connectTimeout;
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
            throw new StoreTimeoutException("could not connect to ZooKeeper at '" + b.connectString + "' within "
                    + connectTimeout.toMillis() + " ms; is the server running (TORUS_RDZV_ENDPOINT)?");
        }
        return new ZooKeeperStore(client, b.connectString, b.root, b.maxValueBytes, b.secret, !auth.isEmpty(), acl);
    }

    private static void requirePositive(String name, Duration d) {
        if (d == null || d.isNegative() || d.isZero()) {
            throw new IllegalArgumentException(name + " must be a positive duration, got " + d);
        }
    }

    private String path(String key) {
        return "/" + NAMESPACE + "/" + root + "/" + Keys.check("key", key);
    }

    /**
     * Creates {@code p} and any missing parents, each with the ACL the provider gives its
     * path. Parents are created top-down with plain creates (an existing one answers
     * NodeExists), never probed with {@code exists}: ZooKeeper checks READ on an existing
     * node for {@code exists}, and the shared parents deny READ to keep run ids unlisted.
     */
    private void create(String p, byte[] value, CreateMode mode) throws Exception {
        try {
            client.create().withMode(mode).forPath(p, value);
        } catch (KeeperException.NoNodeException missingParent) {
            String parent = p.substring(0, p.lastIndexOf('/'));
            for (int i = parent.indexOf('/', 1); ; i = parent.indexOf('/', i + 1)) {
                String sub = i < 0 ? parent : parent.substring(0, i);
                try {
                    client.create().withMode(CreateMode.PERSISTENT).forPath(sub, new byte[0]);
                } catch (KeeperException.NodeExistsException exists) {
                    // made by us or another client; go on down
                }
                if (i < 0) {
                    break;
                }
            }
            // the top node may have been made just now, by us or by someone else: check it
            verifyOwner(p.substring(("/" + NAMESPACE + "/" + root + "/").length()));
            client.create().withMode(mode).forPath(p, value);
        }
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
                        create(p, value, CreateMode.PERSISTENT);
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
                        create(p, ascii(delta), CreateMode.PERSISTENT);
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
                        create(p, desired, CreateMode.PERSISTENT);
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
    @Override
    public void setEphemeral(String key, byte[] value) {
        String p = path(key);
        Keys.checkValue(key, value, maxValueBytes);
        run("setEphemeral", key, () -> {
            try {
                create(p, value, CreateMode.EPHEMERAL);
            } catch (KeeperException.NodeExistsException e) {
                client.setData().forPath(p, value);
            }
            return null;
        });
    }

    /** When {@code key} was last written (its znode's mtime), or null if it does not exist. */
    public java.time.Instant modified(String key) {
        String p = path(key);
        return run("stat", key, () -> {
            Stat st = client.checkExists().forPath(p);
            return st == null ? null : java.time.Instant.ofEpochMilli(st.getMtime());
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

    /**
     * The first node of {@code key} that one job owns: {@code runs/<run>} and
     * {@code index/<id>} below the shared {@code runs} and {@code index}, else the first
     * segment; null for a shared node itself.
     */
    private static String top(String key) {
        String[] seg = key.split("/");
        if (seg[0].equals("runs") || seg[0].equals("index")) {
            return seg.length < 2 ? null : seg[0] + "/" + seg[1];
        }
        return seg[0];
    }

    /**
     * With ACLs of our own, refuses to work below a top node that exists with other ACLs:
     * someone else created it first (a squatted run id), and could have planted keys below
     * it. A top node that does not exist yet is checked again once it does.
     */
    private void verifyOwner(String key) throws Exception {
        if (acl instanceof JobAcl && !sharedVerified) {
            verifySharedParents();
        }
        String top = top(key);
        if (acl == null || top == null || verifiedTops.contains(top)) {
            return;
        }
        String p = path(top);
        List<org.apache.zookeeper.data.ACL> got;
        try {
            got = client.getACL().forPath(p);
        } catch (KeeperException.NoNodeException e) {
            return;
        }
        if (!new java.util.HashSet<>(got).equals(new java.util.HashSet<>(acl.getAclForPath(p)))) {
            throw new StoreAuthException("key '" + key + "' lies below '" + top + "', which another credential created "
                    + "with other ACLs (" + got + "): that run id is taken by someone else, who could have planted keys "
                    + "below it; use another run id", null);
        }
        verifiedTops.add(top);
    }

    private volatile boolean sharedVerified;

    /**
     * The shared parents must not be readable by everyone, or run ids could be listed: a
     * client that created them first without Torus's ACL (or an old Torus) made them so.
     * Reading their ACL is itself refused when they are right (no READ for anyone).
     */
    private void verifySharedParents() throws Exception {
        String base = "/" + NAMESPACE;
        List<String> shared = new ArrayList<>(List.of(base));
        String p = base;
        for (String seg : root.split("/")) {
            p = p + "/" + seg;
            shared.add(p);
        }
        shared.add(p + "/runs");
        shared.add(p + "/index");
        for (String node : shared) {
            List<org.apache.zookeeper.data.ACL> got;
            try {
                got = client.getACL().forPath(node);
            } catch (KeeperException.NoNodeException | KeeperException.NoAuthException fine) {
                continue;
            }
            boolean readable = got.stream().anyMatch(a -> (a.getPerms() & org.apache.zookeeper.ZooDefs.Perms.READ) != 0
                    && a.getId().equals(org.apache.zookeeper.ZooDefs.Ids.ANYONE_ID_UNSAFE));
            if (readable) {
                throw new StoreAuthException("the shared znode " + node + " can be read by anyone (ACL " + got + "), so "
                        + "every job's run ids could be listed; it was created without Torus's ACL (by another client, "
                        + "or an older Torus). Have an administrator delete it, or set its ACL to world:anyone:cd", null);
            }
        }
        sharedVerified = true;
    }

    private interface Op<T> {
        T call() throws Exception;
    }

    private <T> T run(String op, String key, Op<T> body) {
        try {
            verifyOwner(key);
            return body.call();
        } catch (StoreException | IllegalArgumentException e) {
            throw e;
        } catch (KeeperException.NoAuthException e) {
            throw new StoreAuthException("store " + op + " of key '" + key + "' was refused (no permission at znode "
                    + e.getPath() + "): " + (secret == null
                    ? (authenticated ? "this client's credential is not the one the key belongs to"
                            : "this client has no job secret (" + JobSecret.ENV + ") and the key belongs to a job that has one")
                    : "the key belongs to another credential: this process's job secret (" + secret.fingerprint()
                            + ") is not the one its run was created with, or another job holds the same run id"), e);
        } catch (KeeperException.AuthFailedException | KeeperException.SessionClosedRequireAuthException e) {
            throw new StoreAuthException("store " + op + " of key '" + key + "' failed: the ZooKeeper server at '"
                    + connectString + "' requires authentication and " + (authenticated
                    ? "refused this client's credential" : "this client presented none (set " + JobSecret.ENV
                    + ", which torusrun hands to its workers)"), e);
        } catch (KeeperException e) {
            throw new StoreException("store " + op + " of key '" + key + "' failed: " + e.getMessage(), e);
        } catch (IllegalStateException e) {
            throw new IllegalStateException("store " + this + " is closed (during " + op + " of key '" + key + "')", e);
        } catch (Exception e) {
            throw new StoreException("store " + op + " of key '" + key + "' failed: " + e, e);
        }
    }
}
