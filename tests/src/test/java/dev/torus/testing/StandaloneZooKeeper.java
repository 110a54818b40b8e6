package dev.torus.testing;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * A real ZooKeeper server in its own process, as an operator runs one
 * ({@code QuorumPeerMain zoo.cfg}, standalone), on loopback. The test owns it and
 * closes it, which kills the process and deletes its data.
 */
public final class StandaloneZooKeeper implements AutoCloseable {
    private final Process process;
    private final Path dir;
    private final int port;

    private StandaloneZooKeeper(Process process, Path dir, int port) {
        this.process = process;
        this.dir = dir;
        this.port = port;
    }

    /** Starts a server whose zoo.cfg holds {@code extraConfig} lines (e.g. enforce.auth settings). */
    public static StandaloneZooKeeper start(List<String> extraConfig) throws IOException, InterruptedException {
        Path dir = Files.createTempDirectory("torus-test-zk-");
        int port;
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            port = s.getLocalPort();
        }
        StringBuilder cfg = new StringBuilder();
        cfg.append("tickTime=500\n").append("dataDir=").append(dir.resolve("data")).append('\n')
                .append("clientPort=").append(port).append('\n').append("clientPortAddress=127.0.0.1\n")
                .append("admin.enableServer=false\n");
        for (String line : extraConfig) {
            cfg.append(line).append('\n');
        }
        Path zooCfg = Files.writeString(dir.resolve("zoo.cfg"), cfg.toString());
        Process p = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-Xmx128m",
                "-cp", WorkerProcesses.classpath(), "org.apache.zookeeper.server.quorum.QuorumPeerMain", zooCfg.toString())
                .redirectErrorStream(true).redirectOutput(dir.resolve("server.log").toFile()).start();
        StandaloneZooKeeper zk = new StandaloneZooKeeper(p, dir, port);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (true) {
            try (Socket s = new Socket()) {
                s.connect(new InetSocketAddress("127.0.0.1", port), 200);
                return zk;
            } catch (IOException notYet) {
                if (!p.isAlive() || System.nanoTime() > deadline) {
                    String log = Files.readString(dir.resolve("server.log"));
                    zk.close();
                    throw new IOException("the standalone ZooKeeper server did not start: " + log);
                }
                Thread.sleep(100);
            }
        }
    }

    public String connectString() {
        return "127.0.0.1:" + port;
    }

    @Override
    public void close() throws InterruptedException {
        process.destroyForcibly();
        process.waitFor(10, TimeUnit.SECONDS);
        try (Stream<Path> walk = Files.walk(dir)) {
            walk.sorted(Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
        } catch (IOException ignored) {
            // a temp directory left behind is harmless
        }
    }
}
