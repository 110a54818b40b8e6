package dev.torus.cli.serve;

import dev.torus.serve.Autoscaler;
import dev.torus.serve.DynamicBatcher;
import dev.torus.serve.InferenceRouter;
import dev.torus.serve.ModelDigest;
import dev.torus.serve.ReplicaPool;
import dev.torus.serve.ReplicaSet;
import dev.torus.serve.ServeMetrics;
import dev.torus.zookeeper.EmbeddedZooKeeper;
import dev.torus.zookeeper.ZooKeeperReplicaRegistry;
import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Everything {@code torus serve} runs in the router process: the registry (an embedded ZooKeeper unless an
 * external one is given), the replica set, the batcher, the HTTP router, and the pool that launches replica
 * JVMs ({@link ReplicaMain}) and scales them. Owns all of it; {@link #close()} stops it in reverse order.
 */
public final class ServeStack implements AutoCloseable {
    /** What to serve and how. */
    public record Config(Path int8Model, String modelName, int features, int classes, String host, int port,
                         String registry, int zkPort, DynamicBatcher.Options batching, Autoscaler.Options scaling,
                         String emulate, int maxBodyBytes, int maxRowsPerRequest, Path logDir, String replicaHeap,
                         boolean stopReplicasOnClose) {
    }

    private final EmbeddedZooKeeper zk;
    private final ZooKeeperReplicaRegistry registry;
    private final ReplicaSet replicas;
    private final ServeMetrics metrics;
    private final DynamicBatcher batcher;
    private final InferenceRouter router;
    private final ReplicaPool pool;
    private final Config config;

    private ServeStack(Config c, EmbeddedZooKeeper zk, ZooKeeperReplicaRegistry registry, ReplicaSet replicas,
                       ServeMetrics metrics, DynamicBatcher batcher, InferenceRouter router, ReplicaPool pool) {
        this.config = c;
        this.zk = zk;
        this.registry = registry;
        this.replicas = replicas;
        this.metrics = metrics;
        this.batcher = batcher;
        this.router = router;
        this.pool = pool;
    }

    public static ServeStack start(Config c) throws IOException {
        List<AutoCloseable> opened = new ArrayList<>();
        try {
            EmbeddedZooKeeper zk = null;
            String connect = c.registry();
            if (connect == null) {
                zk = EmbeddedZooKeeper.start(new EmbeddedZooKeeper.Options().port(c.zkPort()).authSchemes());
                opened.add(zk);
                connect = zk.connectString();
            }
            ZooKeeperReplicaRegistry registry = ZooKeeperReplicaRegistry.connect(connect, c.modelName(),
                    Duration.ofSeconds(10), Duration.ofSeconds(4));
            opened.add(registry);
            ReplicaSet replicas = new ReplicaSet(1, ModelDigest.of(c.int8Model()));
            DynamicBatcher[] holder = new DynamicBatcher[1];
            ReplicaPool[] poolHolder = new ReplicaPool[1];
            ServeMetrics metrics = new ServeMetrics(c.modelName(), replicas::readyCount,
                    () -> poolHolder[0] == null ? 0 : poolHolder[0].starting(),
                    () -> holder[0] == null ? 0 : holder[0].queued());
            DynamicBatcher batcher = new DynamicBatcher(c.batching(), replicas, c.features(), c.classes(), metrics);
            holder[0] = batcher;
            opened.add(batcher);
            // listen first: a port in use is reported before anything slow happens
            InferenceRouter router = new InferenceRouter(c.modelName(), "torus_int8_mlp", c.features(), c.classes(),
                    batcher, replicas, metrics, c.host(), c.port(), c.maxBodyBytes(), c.maxRowsPerRequest());
            opened.add(router);
            Files.createDirectories(c.logDir());
            String connectString = connect;
            Path archive = recordClassArchive(c, connect);
            String digest = replicas.model();
            ReplicaPool.Launcher launcher = id -> launch(c, connectString, id, archive, digest);
            ReplicaPool pool = new ReplicaPool(registry, launcher, replicas, batcher, new Autoscaler(c.scaling()),
                    TimeUnit.MILLISECONDS.toNanos(100), TimeUnit.SECONDS.toNanos(60));
            poolHolder[0] = pool;
            opened.add(() -> pool.close(c.stopReplicasOnClose()));
            pool.start();
            return new ServeStack(c, zk, registry, replicas, metrics, batcher, router, pool);
        } catch (IOException | RuntimeException e) {
            for (int i = opened.size() - 1; i >= 0; i--) {
                try {
                    opened.get(i).close();
                } catch (Exception suppressed) {
                    e.addSuppressed(suppressed);
                }
            }
            throw e;
        }
    }

    private static List<String> jvm(Config c) {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        return new ArrayList<>(List.of(java, "-Xmx" + c.replicaHeap(), "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                "-XX:CICompilerCount=1", "-XX:-UsePerfData", "-Xshare:auto"));
    }

    /**
     * Runs one replica dry (load, warm up, one batch over HTTP, exit) with {@code -XX:ArchiveClassesAtExit}, so
     * that every replica after it maps the classes it loaded from a shared archive instead of loading them: on
     * 2 cores this halves the time from JVM start to ready (docs/SERVING.md). The dry run is also the first
     * load of the model in a replica JVM: when it fails, the model or the environment is broken, and serving
     * stops here with the end of its log instead of launching replicas that die one after another.
     */
    private static Path recordClassArchive(Config c, String connect) {
        Path archive = c.logDir().resolve("replica-classes.jsa");
        if (Files.isRegularFile(archive)) {
            return archive;
        }
        // the JVM archives classes only from jars: with class directories on the path (tests, IDEs) the trial
        // run still checks the model, and replicas start without an archive
        boolean jarsOnly = java.util.Arrays.stream(System.getProperty("java.class.path").split(java.io.File.pathSeparator))
                .allMatch(e -> e.endsWith(".jar") && Files.isRegularFile(Path.of(e)));
        List<String> cmd = jvm(c);
        if (jarsOnly) {
            cmd.addAll(List.of("-XX:ArchiveClassesAtExit=" + archive, "-Xlog:cds=off", "-Xlog:cds+dynamic=off"));
        }
        cmd.addAll(List.of("-cp",
                System.getProperty("java.class.path"), ReplicaMain.class.getName(), "--model", c.int8Model().toString(),
                "--dry-run", "--host", "127.0.0.1", "--registry", connect, "--service", c.modelName()));
        Path log = c.logDir().resolve("class-archive.log");
        try {
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
            if (!p.waitFor(60, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new IllegalStateException("a trial replica did not start within 60 s; see " + log);
            }
            if (p.exitValue() != 0) {
                throw new IllegalStateException("a trial replica failed (exit code " + p.exitValue() + "): "
                        + lastLines(log, 3) + " (full log: " + log + ")");
            }
            return Files.isRegularFile(archive) ? archive : null;
        } catch (IOException e) {
            throw new IllegalStateException("cannot start a replica JVM: " + e.getMessage(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while starting a trial replica", e);
        }
    }

    private static String lastLines(Path log, int n) {
        try {
            List<String> lines = Files.readAllLines(log).stream().filter(l -> !l.isBlank() && !l.startsWith("\tat ")
                    && !l.contains(" WARN ")).toList();
            return String.join(" | ", lines.subList(Math.max(0, lines.size() - n), lines.size()));
        } catch (IOException e) {
            return "(no log: " + e.getMessage() + ")";
        }
    }

    private static Process launch(Config c, String connect, String id, Path archive, String digest)
            throws IOException {
        List<String> cmd = jvm(c);
        if (Files.isExecutable(Path.of("/usr/bin/nice"))) {
            // a starting JVM must not starve the router and the replicas already serving
            cmd.addAll(0, List.of("/usr/bin/nice", "-n", "5"));
        }
        if (archive != null) {
            cmd.add("-XX:SharedArchiveFile=" + archive);
        }
        cmd.addAll(List.of("-cp", System.getProperty("java.class.path"),
                ReplicaMain.class.getName(), "--model", c.int8Model().toString(), "--registry", connect,
                "--service", c.modelName(), "--id", id, "--model-digest", digest,
                "--host", c.host().equals("0.0.0.0") ? "127.0.0.1" : c.host(),
                "--max-rows", Integer.toString(Math.max(c.batching().maxBatch(), c.maxRowsPerRequest()))));
        if (archive != null) {
            cmd.add(cmd.indexOf("-cp"), "-Xlog:cds=off");
        }
        if (c.emulate() != null) {
            cmd.add("--emulate");
            cmd.add(c.emulate());
        }
        File log = c.logDir().resolve(id + ".log").toFile();
        return new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log).start();
    }

    public InferenceRouter router() {
        return router;
    }

    public ReplicaPool pool() {
        return pool;
    }

    public ReplicaSet replicas() {
        return replicas;
    }

    public DynamicBatcher batcher() {
        return batcher;
    }

    public ServeMetrics metrics() {
        return metrics;
    }

    public Config config() {
        return config;
    }

    /** The registry's connect string (the embedded server's, or the external one). */
    public String registryConnectString() {
        return zk != null ? zk.connectString() : config.registry();
    }

    private final java.util.concurrent.atomic.AtomicBoolean closed = new java.util.concurrent.atomic.AtomicBoolean();

    /** Stops everything once; later calls return at once. */
    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        // stop taking connections, let what was received finish (bounded), then fail what still waits (503)
        // while the event loops can still answer, and only then stop the loops and the replicas
        router.stopAccepting();
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (batcher.inFlight() > 0 && System.nanoTime() < until) {
            try {
                Thread.sleep(10);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        }
        batcher.close();
        pool.close(config.stopReplicasOnClose());
        try {
            Thread.sleep(100);     // the 503s of the batcher's close leave through the event loops
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        router.close();
        registry.close();
        if (zk != null) {
            zk.close();
        }
    }
}
