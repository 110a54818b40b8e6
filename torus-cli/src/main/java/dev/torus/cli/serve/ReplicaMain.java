package dev.torus.cli.serve;

import dev.torus.serve.BatchModel;
import dev.torus.serve.EmulatedServiceTime;
import dev.torus.serve.Int8Mlp;
import dev.torus.serve.ReplicaRegistry;
import dev.torus.serve.ReplicaServer;
import dev.torus.zookeeper.ZooKeeperReplicaRegistry;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * One serving replica (a worker JVM that {@code torus serve} launches): loads the int8 model and keeps its
 * weights int8, runs one warm-up batch, listens, and only then registers in ZooKeeper. It exits (code 0)
 * after draining when the router asks it to stop or on SIGTERM, and (code 3) when it has been cut off from
 * the registry for {@code --orphan-timeout-s}, so that no replica outlives its service for long.
 */
@Command(name = "torus-replica", mixinStandardHelpOptions = true, description = "A serving replica (started by torus serve).")
public final class ReplicaMain implements Callable<Integer> {
    /** Batches a replica sends itself over HTTP before registering (emulated time is skipped for them). */
    static final int WARM_UP_BATCHES = 8;

    @Option(names = "--model", required = true, description = "int8 torus-mlp safetensors file")
    Path model;
    @Option(names = "--registry", description = "ZooKeeper connect string")
    String registry;
    @Option(names = "--service", description = "service (model) name")
    String service;
    @Option(names = "--id", description = "replica id")
    String id;
    @Option(names = "--model-digest", description = "the model file's digest, as the router computed it")
    String modelDigest;
    @Option(names = "--dry-run", description = "load, warm up, listen, then exit without registering (used to record "
            + "the class-data archive that makes later replicas start faster)")
    boolean dryRun;
    @Option(names = "--host", defaultValue = "127.0.0.1", description = "address to listen on")
    String host;
    @Option(names = "--max-rows", defaultValue = "64", description = "largest batch")
    int maxRows;
    @Option(names = "--emulate", description = "emulated service time BASE_MS+PER_ROW_MS")
    String emulate;
    @Option(names = "--orphan-timeout-s", defaultValue = "30", description = "exit after this long without the registry")
    int orphanTimeoutS;

    public static void main(String[] args) {
        System.exit(new CommandLine(new ReplicaMain()).execute(args));
    }

    @Override
    public Integer call() throws Exception {
        long t0 = System.nanoTime();
        // the router passes the digest of the file it launched us with (hashing it again costs start-up time)
        String digest = modelDigest != null ? modelDigest : dev.torus.serve.ModelDigest.of(model);
        BatchModel m = Int8Mlp.load(model);
        EmulatedServiceTime emulated = null;
        if (emulate != null) {
            long[] e = EmulatedServiceTime.parse(emulate);
            m = emulated = new EmulatedServiceTime(m, e[0], e[1]);
            emulated.bypass(true);
        }
        long loaded = System.nanoTime();
        if (dryRun) {
            try (ReplicaServer server = new ReplicaServer(m, host, 0, maxRows)) {
                // the HTTP path too, so that its classes are in the archive
                server.warmUpOverHttp(WARM_UP_BATCHES);
                if (registry != null && service != null) {
                    // and the registry client's classes: register under a throwaway id and leave again
                    try (ZooKeeperReplicaRegistry reg = ZooKeeperReplicaRegistry.connect(registry, service,
                            Duration.ofSeconds(10), Duration.ofSeconds(4))) {
                        String dry = "dry-run-" + ProcessHandle.current().pid();
                        reg.register(new ReplicaRegistry.Entry(dry, server.endpoint(), ProcessHandle.current().pid(),
                                digest))
                                .close();
                        reg.stopRequested(dry);
                    }
                }
                System.out.printf("dry run: loaded in %d ms, ready after %d ms%n", (loaded - t0) / 1_000_000,
                        (System.nanoTime() - t0) / 1_000_000);
            }
            return 0;
        }
        if (registry == null || service == null || id == null) {
            throw new CommandLine.ParameterException(new CommandLine(this),
                    "--registry, --service and --id are required (or --dry-run)");
        }
        try (ReplicaServer server = new ReplicaServer(m, host, 0, maxRows);
             ZooKeeperReplicaRegistry reg = ZooKeeperReplicaRegistry.connect(registry, service, Duration.ofSeconds(10),
                     Duration.ofSeconds(4))) {
            server.warmUpOverHttp(WARM_UP_BATCHES);
            if (emulated != null) {
                emulated.bypass(false);
            }
            long warm = System.nanoTime();
            AutoCloseable registration = reg.register(new ReplicaRegistry.Entry(id, server.endpoint(),
                    ProcessHandle.current().pid(), digest));
            System.out.printf("replica %s ready at %s: loaded in %d ms, warm-up and listen %d ms, registered %d ms "
                            + "after start (JVM uptime %d ms)%n", id, server.endpoint(), (loaded - t0) / 1_000_000,
                    (warm - loaded) / 1_000_000, (System.nanoTime() - t0) / 1_000_000,
                    java.lang.management.ManagementFactory.getRuntimeMXBean().getUptime());
            CountDownLatch sigterm = new CountDownLatch(1);
            CountDownLatch exited = new CountDownLatch(1);
            Runtime.getRuntime().addShutdownHook(new Thread(() -> {
                sigterm.countDown();
                try {
                    exited.await();
                } catch (InterruptedException ignored) {
                    Thread.currentThread().interrupt();
                }
            }));
            try {
                int code = awaitStop(reg, sigterm);
                if (code == 3) {
                    // cut off from the registry: nothing to deregister from, and closing the client would wait out
                    // its retries; finish what is in flight and go
                    server.beginDrain();
                    server.awaitDrained(5_000);
                    System.out.flush();
                    Runtime.getRuntime().halt(3);
                }
                server.beginDrain();
                server.awaitDrained(10_000);
                try {
                    registration.close();
                } catch (Exception ignored) {
                    // the session may be gone already
                }
                if (code == 0) {
                    reg.clearStop(id);
                }
                System.out.println("replica " + id + ": served " + server.batchesServed() + " batches, exiting");
                return code;
            } finally {
                exited.countDown();
            }
        }
    }

    /** Waits for a stop request or SIGTERM (0), or for the registry to be gone too long (3). */
    private int awaitStop(ZooKeeperReplicaRegistry reg, CountDownLatch sigterm) throws InterruptedException {
        long lastConnected = System.nanoTime();
        while (true) {
            if (sigterm.getCount() == 0) {
                System.out.println("replica " + id + ": SIGTERM, draining");
                return 0;
            }
            if (reg.connected()) {
                lastConnected = System.nanoTime();
                try {
                    if (reg.stopRequested(id)) {
                        System.out.println("replica " + id + ": stop requested, draining");
                        return 0;
                    }
                } catch (IllegalStateException e) {
                    // lost the connection between the two calls; the next round sees it
                }
            } else if (System.nanoTime() - lastConnected > orphanTimeoutS * 1_000_000_000L) {
                System.out.println("replica " + id + ": no registry for " + orphanTimeoutS + " s, exiting");
                return 3;
            }
            Thread.sleep(100);
        }
    }
}
