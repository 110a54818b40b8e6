package dev.torus.rendezvous;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.Properties;
import java.util.stream.Stream;
import org.apache.zookeeper.server.embedded.ExitHandler;
import org.apache.zookeeper.server.embedded.ZooKeeperServerEmbedded;

/**
 * A single-node ZooKeeper server inside this JVM, bound to loopback: the default
 * rendezvous when no external ensemble is named. The creator owns it; {@link #close()}
 * stops the server and deletes its data directory.
 */
public final class EmbeddedZooKeeper implements AutoCloseable {
    private final ZooKeeperServerEmbedded server;
    private final Path dataDir;
    private final int port;
    private boolean closed;

    private EmbeddedZooKeeper(ZooKeeperServerEmbedded server, Path dataDir, int port) {
        this.server = server;
        this.dataDir = dataDir;
        this.port = port;
    }

    /** Starts a server on a free loopback port. */
    public static EmbeddedZooKeeper start() {
        return start(0);
    }

    /** Starts a server on {@code port} (0 picks a free one). */
    public static EmbeddedZooKeeper start(int port) {
        if (port < 0 || port > 65535) {
            throw new IllegalArgumentException("port must be in 0..65535, got " + port);
        }
        Path dir = null;
        try {
            int p = port == 0 ? freePort() : port;
            dir = Files.createTempDirectory("torus-zk-");
            Properties cfg = new Properties();
            cfg.setProperty("clientPort", Integer.toString(p));
            cfg.setProperty("clientPortAddress", "127.0.0.1");
            cfg.setProperty("tickTime", "500");
            cfg.setProperty("minSessionTimeout", "1000");
            cfg.setProperty("maxSessionTimeout", "60000");
            cfg.setProperty("admin.enableServer", "false");
            cfg.setProperty("maxClientCnxns", "0");
            ZooKeeperServerEmbedded server = ZooKeeperServerEmbedded.builder()
                    .baseDir(dir)
                    .configuration(cfg)
                    .exitHandler(ExitHandler.LOG_ONLY)
                    .build();
            server.start(15_000);
            return new EmbeddedZooKeeper(server, dir, p);
        } catch (Exception e) {
            if (dir != null) {
                deleteTree(dir);
            }
            throw new StoreException("could not start the embedded ZooKeeper server: " + e, e);
        }
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    /** The connect string clients use, e.g. {@code 127.0.0.1:41234}. */
    public String connectString() {
        return "127.0.0.1:" + port;
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
