package dev.torus.cli;

import dev.torus.cli.serve.ServeStack;
import dev.torus.serve.Autoscaler;
import dev.torus.serve.DynamicBatcher;
import dev.torus.serve.EmulatedServiceTime;
import dev.torus.serve.MlpModelFile;
import dev.torus.serve.SafeTensorsFile;
import dev.torus.serve.SafeTensors;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code ./torus serve MODEL}: serves a torus-mlp safetensors file over the Open Inference Protocol (KServe
 * v2 REST) with dynamic batching and a replica pool that follows the load. An fp32 file is quantized to int8
 * once at start (the replicas load the int8 file). Runs until SIGINT/SIGTERM, then stops the replicas.
 */
@Command(name = "torus serve", mixinStandardHelpOptions = true, version = "torus serve 0.1.0",
        description = {"Serves a model file (safetensors, torus-mlp; fp32 or int8) over the Open Inference Protocol "
                + "(KServe v2) REST API, with dynamic batching and autoscaled replica processes (docs/SERVING.md)."})
public final class TorusServe implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "MODEL", description = "model file, e.g. torus-demo/model.safetensors")
    Path model;

    @Option(names = "--min", defaultValue = "1", description = "Fewest replicas (default ${DEFAULT-VALUE}).")
    int min;
    @Option(names = "--max", defaultValue = "4", description = "Most replicas (default ${DEFAULT-VALUE}).")
    int max;
    @Option(names = "--port", defaultValue = "8000", description = "HTTP port; 0 picks a free one (default ${DEFAULT-VALUE}).")
    int port;
    @Option(names = "--host", defaultValue = "127.0.0.1", description = "Address to listen on (default ${DEFAULT-VALUE}, "
            + "loopback only).")
    String host;
    @Option(names = "--max-batch", defaultValue = "8", description = "Rows per batch at most (default ${DEFAULT-VALUE}).")
    int maxBatch;
    @Option(names = "--max-queue-delay-ms", defaultValue = "5", description = "How long a request may wait for its "
            + "batch to fill (default ${DEFAULT-VALUE}).")
    double maxQueueDelayMs;
    @Option(names = "--max-queue", defaultValue = "512", description = "Requests that may wait; more get 429 "
            + "(default ${DEFAULT-VALUE}).")
    int maxQueue;
    @Option(names = "--max-rows-per-request", defaultValue = "64", description = "(default ${DEFAULT-VALUE})")
    int maxRowsPerRequest;
    @Option(names = "--max-body-bytes", defaultValue = "1048576", description = "Larger bodies get 413 (default ${DEFAULT-VALUE}).")
    int maxBodyBytes;
    @Option(names = "--target-in-flight", defaultValue = "2", description = "Autoscaler target: requests in flight per "
            + "replica (default ${DEFAULT-VALUE}).")
    double target;
    @Option(names = "--stable-window-s", defaultValue = "30", description = "(default ${DEFAULT-VALUE})")
    double stableWindowS;
    @Option(names = "--panic-window-s", defaultValue = "2", description = "(default ${DEFAULT-VALUE})")
    double panicWindowS;
    @Option(names = "--scale-down-delay-s", defaultValue = "10", description = "(default ${DEFAULT-VALUE})")
    double scaleDownDelayS;
    @Option(names = "--registry", description = "External ZooKeeper connect string (default: an embedded one on "
            + "loopback).")
    String registry;
    @Option(names = "--zk-port", defaultValue = "0", description = "Port of the embedded ZooKeeper; fix it so that "
            + "replicas find a restarted router (default: free port).")
    int zkPort;
    @Option(names = "--emulate", description = "Emulated service time per batch, BASE_MS+PER_ROW_MS (benchmarks).")
    String emulate;
    @Option(names = "--log-dir", description = "Replica logs (default: a new temporary directory).")
    Path logDir;
    @Option(names = "--keep-replicas", description = "Leave the replicas running at exit (they re-register with the "
            + "next router on the same registry).")
    boolean keepReplicas;

    public static void main(String[] args) {
        System.exit(commandLine().execute(args));
    }

    public static CommandLine commandLine() {
        CommandLine cl = new CommandLine(new TorusServe());
        cl.setExecutionExceptionHandler(ExpectedFailures.oneLine("torus serve"));
        cl.setParameterExceptionHandler(ExpectedFailures.oneLineParse("torus serve"));
        return cl;
    }

    /** The model name the protocol uses: the file name without {@code .safetensors}. */
    static String modelName(Path file) {
        String n = file.getFileName().toString();
        return n.endsWith(".safetensors") ? n.substring(0, n.length() - ".safetensors".length()) : n;
    }

    private static void check(boolean ok, String option, String expected, Object got) {
        if (!ok) {
            throw new IllegalArgumentException(option + " must be " + expected + ", got " + got);
        }
    }

    @Override
    public Integer call() throws Exception {
        check(min >= 0 && min <= 64, "--min", "in [0, 64]", min);
        check(max >= Math.max(1, min) && max <= 64, "--max", "in [max(1, --min), 64]", max);
        check(port >= 0 && port <= 65535, "--port", "in [0, 65535]", port);
        check(maxBatch >= 1 && maxBatch <= 4096, "--max-batch", "in [1, 4096]", maxBatch);
        check(maxQueueDelayMs >= 0 && maxQueueDelayMs <= 10_000, "--max-queue-delay-ms", "in [0, 10000]", maxQueueDelayMs);
        check(maxQueue >= 1, "--max-queue", ">= 1", maxQueue);
        check(maxRowsPerRequest >= 1 && maxRowsPerRequest <= 4096, "--max-rows-per-request", "in [1, 4096]",
                maxRowsPerRequest);
        check(maxBodyBytes >= 1024, "--max-body-bytes", ">= 1024", maxBodyBytes);
        check(target > 0 && Double.isFinite(target), "--target-in-flight", "a finite number > 0", target);
        check(panicWindowS > 0 && panicWindowS <= stableWindowS && stableWindowS <= 3600, "--panic-window-s and "
                + "--stable-window-s", "0 < panic <= stable <= 3600", panicWindowS + " and " + stableWindowS);
        check(scaleDownDelayS >= 0 && scaleDownDelayS <= 3600, "--scale-down-delay-s", "in [0, 3600]", scaleDownDelayS);
        check(host != null && !host.isBlank(), "--host", "an address", host);
        if (!Files.isRegularFile(model)) {
            throw new IllegalArgumentException("MODEL: " + (Files.isDirectory(model) ? "a directory, not a model file: "
                    : "no such file: ") + model);
        }
        if (emulate != null) {
            EmulatedServiceTime.parse(emulate);
        }
        if (!modelName(model).matches("[A-Za-z0-9_.-]{1,128}")) {
            throw new IllegalArgumentException("MODEL: the file name without .safetensors is the model's name and must be "
                    + "1-128 characters of [A-Za-z0-9_.-], got '" + modelName(model) + "'");
        }
        if (registry == null && !(host.equals("0.0.0.0") || host.equals("::"))
                && new java.net.InetSocketAddress(host, 0).isUnresolved()) {
            throw new IllegalArgumentException("--host: unknown host '" + host + "'");
        }
        dev.torus.serve.MlpSpec spec;
        try (SafeTensorsFile f = SafeTensors.read(model)) {
            spec = MlpModelFile.spec(f);
        }
        // a directory of our own is removed at exit; one given with --log-dir is kept
        boolean ownLogs = logDir == null;
        Path logs = ownLogs ? Files.createTempDirectory("torus-serve-") : logDir;
        try {
            Files.createDirectories(logs);
            return serve(spec, logs);
        } finally {
            if (ownLogs) {
                deleteTree(logs);
            }
        }
    }

    private int serve(dev.torus.serve.MlpSpec spec, Path logs) throws Exception {
        Path int8 = model;
        if (!spec.quantized()) {
            int8 = logs.resolve(modelName(model) + ".int8.safetensors");
            MlpModelFile.quantize(model, int8);
            System.out.println("torus serve: quantized " + model + " to int8 weights in " + int8);
        }
        ServeStack.Config config = new ServeStack.Config(int8, modelName(model), spec.inputs(), spec.classes(), host,
                port, registry, zkPort,
                DynamicBatcher.Options.defaults().withMaxBatch(maxBatch)
                        .withMaxQueueDelayNanos((long) (maxQueueDelayMs * 1e6)).withMaxQueuedRequests(maxQueue),
                Autoscaler.Options.defaults(min, max).withTarget(target).withWindows((long) (stableWindowS * 1e9),
                        (long) (panicWindowS * 1e9), (long) (scaleDownDelayS * 1e9)),
                emulate, maxBodyBytes, maxRowsPerRequest, logs, "256m", !keepReplicas);
        CountDownLatch stop = new CountDownLatch(1);
        CountDownLatch stopped = new CountDownLatch(1);
        try (ServeStack stack = ServeStack.start(config)) {
            // SIGINT/SIGTERM: the main thread closes the stack (draining the replicas); the hook waits for it
            Runtime.getRuntime().addShutdownHook(new Thread(() -> {
                stop.countDown();
                try {
                    stopped.await(30, java.util.concurrent.TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }));
            // every pool event and autoscaler decision, with its inputs, on stdout
            stack.pool().onEvent(e -> System.out.printf("torus serve: %s %s%s%n", e.kind(),
                    e.replicaId().isEmpty() ? "" : e.replicaId() + " ", e.detail()));
            String url = stack.router().endpoint();
            System.out.printf("torus serve: model \"%s\" (%d features, %d classes) at %s, replicas %d..%d, "
                            + "registry %s, replica logs in %s%n", config.modelName(), spec.inputs(), spec.classes(),
                    url, min, max, stack.registryConnectString(), logs);
            System.out.printf("  curl %s/v2/models/%s/ready%n", url, config.modelName());
            System.out.printf("  curl -H 'Content-Type: application/json' -d '{\"inputs\":[{\"name\":\"input\","
                    + "\"shape\":[1,%d],\"datatype\":\"FP32\",\"data\":[...]}]}' %s/v2/models/%s/infer%n",
                    spec.inputs(), url, config.modelName());
            System.out.flush();
            stop.await();
        } finally {
            stopped.countDown();
        }
        return 0;
    }

    private static void deleteTree(Path dir) {
        try (var walk = Files.walk(dir)) {
            walk.sorted(java.util.Comparator.reverseOrder()).forEach(p -> {
                try {
                    Files.deleteIfExists(p);
                } catch (java.io.IOException ignored) {
                    // best effort: a temporary directory
                }
            });
        } catch (java.io.IOException ignored) {
            // already gone
        }
    }
}
