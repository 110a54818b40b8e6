package dev.torus.zookeeper;

import dev.torus.rendezvous.StoreException;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.List;
import java.util.Properties;
import java.util.stream.Stream;
import org.apache.zookeeper.server.embedded.ExitHandler;
import org.apache.zookeeper.server.embedded.ZooKeeperServerEmbedded;

/**
 * A single-node ZooKeeper server inside this JVM, bound to loopback: the default
 * rendezvous when no external ensemble is named. The creator owns it; {@link #close()}
 * stops the server and deletes its data directory.
 *
 * <p>By default the server requires every client to authenticate before any request
 * ({@code enforce.auth}), with the digest scheme; a client that presents no credential
 * is refused. Which keys a credential may touch is then up to the ACLs its creator set
 * ({@link ZooKeeperStore.Builder#jobSecret}). {@link Options#authSchemes} selects other
 * schemes, e.g. {@code sasl} with a JAAS configuration given the standard ZooKeeper way
 * (system properties). {@link #startWithoutAuth()} starts an open server, for tests and
 * single-user experiments. ZooKeeper reads these settings from JVM-wide system
 * properties at server start, so start servers of one JVM one at a time.
 */
public final class EmbeddedZooKeeper implements AutoCloseable {
    private final ZooKeeperServerEmbedded server;
    private final Path dataDir;
    private final int port;
    private final String host;
    private boolean closed;

    private final List<String> schemes;

    private EmbeddedZooKeeper(ZooKeeperServerEmbedded server, Path dataDir, String host, int port,
                              List<String> schemes) {
        this.server = server;
        this.dataDir = dataDir;
        this.host = host;
        this.port = port;
        this.schemes = schemes;
    }

    /** Starts a server on a free loopback port that requires digest authentication. */
    public static EmbeddedZooKeeper start() {
        return start(new Options());
    }

    /** Starts a server on {@code port} (0 picks a free one) that requires digest authentication. */
    public static EmbeddedZooKeeper start(int port) {
        return start(new Options().port(port));
    }

    /** Starts a server on a free loopback port that accepts clients without authentication. */
    public static EmbeddedZooKeeper startWithoutAuth() {
        return start(new Options().authSchemes());
    }

    /** How to start an embedded server. */
    public static final class Options {
        private int port;
        private String bindAddress = "127.0.0.1";
        private List<String> schemes = List.of("digest");

        /**
         * The IPv4 address to listen on (loopback by default), e.g. a bridge address that test hosts in
         * network namespaces reach it by.
         */
        public Options bindAddress(String address) {
            if (address == null || !address.matches("\\d{1,3}(\\.\\d{1,3}){3}")) {
                throw new IllegalArgumentException("bindAddress must be an IPv4 address like 10.0.0.1, got '" + address
                        + "'");
            }
            this.bindAddress = address;
            return this;
        }

        /** The client port; 0 (the default) picks a free one. */
        public Options port(int port) {
            if (port < 0 || port > 65535) {
                throw new IllegalArgumentException("port must be in 0..65535, got " + port);
            }
            this.port = port;
            return this;
        }

        /**
         * The schemes a client must have authenticated with (any one), e.g. {@code "digest"}
         * (the default) or {@code "sasl"}; none at all starts an open server.
         */
        public Options authSchemes(String... schemes) {
            for (String sc : schemes) {
                if (sc == null || !sc.matches("[a-z0-9]{1,32}")) {
                    throw new IllegalArgumentException("authSchemes must be ZooKeeper scheme names like 'digest' or 'sasl', got '"
                            + sc + "'");
                }
            }
            this.schemes = List.of(schemes);
            return this;
        }
    }

    /** Starts a server with {@code options}. */
    public static EmbeddedZooKeeper start(Options options) {
        Path dir = null;
        try {
            int p = options.port == 0 ? freePort(options.bindAddress) : options.port;
            sweepOrphanedDataDirs();
            dir = Files.createTempDirectory(DIR_PREFIX + ProcessHandle.current().pid() + "-");
            Properties cfg = new Properties();
            cfg.setProperty("clientPort", Integer.toString(p));
            cfg.setProperty("clientPortAddress", options.bindAddress);
            cfg.setProperty("tickTime", "500");
            cfg.setProperty("minSessionTimeout", "1000");
            cfg.setProperty("maxSessionTimeout", "60000");
            cfg.setProperty("admin.enableServer", "false");
            cfg.setProperty("maxClientCnxns", "0");
            // always set, both ways: ZooKeeper turns these into JVM-wide system properties
            cfg.setProperty("enforce.auth.enabled", Boolean.toString(!options.schemes.isEmpty()));
            cfg.setProperty("enforce.auth.schemes", options.schemes.isEmpty() ? "digest" : String.join(",", options.schemes));
            if (options.schemes.contains("sasl")) {
                cfg.setProperty("authProvider.sasl", "org.apache.zookeeper.server.auth.SASLAuthenticationProvider");
            }
            ZooKeeperServerEmbedded server = ZooKeeperServerEmbedded.builder()
                    .baseDir(dir)
                    .configuration(cfg)
                    .exitHandler(ExitHandler.LOG_ONLY)
                    .build();
            server.start(15_000);
            return new EmbeddedZooKeeper(server, dir, options.bindAddress, p, options.schemes);
        } catch (Exception e) {
            if (dir != null) {
                deleteTree(dir);
            }
            throw new StoreException("could not start the embedded ZooKeeper server: " + e, e);
        }
    }

    /** The schemes clients must authenticate with; empty for an open server. */
    public List<String> authSchemes() {
        return schemes;
    }

    private static final String DIR_PREFIX = "torus-zk-";

    /**
     * Deletes the data directories that servers of dead processes left in the temp
     * directory (a JVM killed with SIGKILL cannot delete its own): {@code torus-zk-<pid>-*}
     * of this user whose pid no longer runs. Best effort.
     */
    static void sweepOrphanedDataDirs() {
        Path tmp = Path.of(System.getProperty("java.io.tmpdir"));
        String me = System.getProperty("user.name");
        try (Stream<Path> dirs = Files.list(tmp)) {
            for (Path d : dirs.toList()) {
                String name = d.getFileName().toString();
                if (!name.startsWith(DIR_PREFIX)) {
                    continue;
                }
                String[] parts = name.substring(DIR_PREFIX.length()).split("-", 2);
                long pid;
                try {
                    pid = Long.parseLong(parts[0]);
                } catch (NumberFormatException e) {
                    continue;
                }
                if (parts.length < 2 || ProcessHandle.of(pid).isPresent()
                        || !Files.isDirectory(d, java.nio.file.LinkOption.NOFOLLOW_LINKS)
                        || !Files.getOwner(d, java.nio.file.LinkOption.NOFOLLOW_LINKS).getName().equals(me)) {
                    continue;
                }
                deleteTree(d);
            }
        } catch (IOException | RuntimeException e) {
            // leftovers are harmless; never fail a start over them
        }
    }

    private static int freePort(String address) throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getByName(address))) {
            return s.getLocalPort();
        }
    }

    /** The connect string clients use, e.g. {@code 127.0.0.1:41234}. */
    public String connectString() {
        return host + ":" + port;
    }

    public int port() {
        return port;
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        server.close();
        deleteTree(dataDir);
    }

    private static void deleteTree(Path dir) {
        try (Stream<Path> walk = Files.walk(dir)) {
            walk.sorted(Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
        } catch (IOException ignored) {
            // best effort: a temp directory left behind is harmless
        }
    }
}
