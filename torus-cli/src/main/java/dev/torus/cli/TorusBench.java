package dev.torus.cli;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

import dev.torus.Device;
import dev.torus.NativeLibrary;
import dev.torus.cli.bench.BenchRow;
import dev.torus.cli.bench.QuantBench;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code torus-bench}: benchmarks that report ratios measured within one run. */
@Command(name = "torus-bench", mixinStandardHelpOptions = true, version = "torus-bench 0.1.0",
        description = "Torus benchmarks. Each reports ratios measured in the same run.",
        subcommands = {TorusBench.Quant.class, TorusBench.GemmInt8.class, TorusBench.AllReduce.class, TorusBench.AllGather.class,
                TorusBench.ReduceScatter.class, TorusBench.Broadcast.class, TorusBench.SendRecv.class,
                TorusBench.Recompute.class, TorusBench.Dp.class, TorusBench.Rendezvous.class,
                TorusBench.Elastic.class, TorusBench.Pipeline.class, TorusBench.Tp.class, TorusBench.Serve.class,
                TorusBench.Hosts.class})
public final class TorusBench implements Runnable {
    @Override
    public void run() {
        CommandLine.usage(this, System.out);
    }

    public static void main(String[] args) {
        System.exit(run(args));
    }

    /** Runs the CLI and returns its exit code. */
    public static int run(String... args) {
        return commandLine().execute(args);
    }

    /**
     * The configured command line: expected failures (a bad value, no GPU, a broken communicator) print one
     * line and exit with 2; anything else is a bug and keeps its stack trace. Callers may redirect its output.
     */
    public static CommandLine commandLine() {
        CommandLine cl = new CommandLine(new TorusBench());
        cl.setExecutionExceptionHandler(ExpectedFailures.oneLine("torus-bench"));
        cl.setParameterExceptionHandler(ExpectedFailures.oneLineParse("torus-bench"));
        return cl;
    }

    /** The serving stack under a real HTTP load: batching, and the replica pool following a step load. */
    @Command(name = "serve", mixinStandardHelpOptions = true,
            description = "torus serve under an open-loop step load on loopback (replica processes, embedded "
                    + "ZooKeeper): scale-up decision time, replica ready time, p99 in and after the transition, "
                    + "non-2xx answers, and batching throughput against batch 1; writes serve.png (~2 min on 2 cores).")
    static final class Serve implements Callable<Integer> {
        @Option(names = "--json", description = "Also write the results as one JSON object to FILE.")
        Path json;
        @Option(names = "--out", defaultValue = "torus-bench-serve", description = "Directory for serve.png, the model "
                + "and replica logs (default ${DEFAULT-VALUE}).")
        Path out;
        @Option(names = "--emulate", defaultValue = "4+12", description = "Replica time per batch in the autoscaling "
                + "run, BASE_MS+PER_ROW_MS (default ${DEFAULT-VALUE}).")
        String emulate;
        @Option(names = "--batch-emulate", defaultValue = "20+1", description = "Replica time per batch in the "
                + "batching run (default ${DEFAULT-VALUE}).")
        String batchEmulate;
        @Option(names = "--real", description = "No emulated time: replicas run the int8 MLP only.")
        boolean real;
        @Option(names = "--poisson", description = "Poisson arrivals (seeded) instead of evenly spaced ones.")
        boolean poisson;
        @Option(names = "--low", defaultValue = "5", description = "Requests/s before and after the step (default ${DEFAULT-VALUE}).")
        double low;
        @Option(names = "--high", defaultValue = "60", description = "Requests/s during the step (default ${DEFAULT-VALUE}).")
        double high;
        @Option(names = "--low-s", defaultValue = "10", description = "(default ${DEFAULT-VALUE})")
        double lowS;
        @Option(names = "--high-s", defaultValue = "30", description = "(default ${DEFAULT-VALUE})")
        double highS;
        @Option(names = "--down-s", defaultValue = "45", description = "(default ${DEFAULT-VALUE})")
        double downS;
        @Option(names = "--constant-s", defaultValue = "0", description = "Also run a constant load this long "
                + "(120 for the flapping check; default ${DEFAULT-VALUE}: skipped).")
        double constantS;
        @Option(names = "--constant-rate", defaultValue = "40", description = "(default ${DEFAULT-VALUE})")
        double constantRate;
        @Option(names = "--max", defaultValue = "4", description = "Most replicas (default ${DEFAULT-VALUE}).")
        int max;
        @Option(names = "--target", defaultValue = "0.5", description = "Target requests in flight per replica "
                + "(default ${DEFAULT-VALUE}).")
        double target;
        @Option(names = "--max-batch", defaultValue = "8", description = "(default ${DEFAULT-VALUE})")
        int maxBatch;
        @Option(names = "--concurrency", defaultValue = "16", description = "Closed-loop clients in the batching run "
                + "(default ${DEFAULT-VALUE}).")
        int concurrency;
        @Option(names = "--batching-s", defaultValue = "10", description = "Seconds per batching run; 0 skips it "
                + "(default ${DEFAULT-VALUE}).")
        double batchingS;

        @Override
        public Integer call() throws Exception {
            dev.torus.serve.EmulatedServiceTime.parse(emulate);
            dev.torus.serve.EmulatedServiceTime.parse(batchEmulate);
            for (double[] v : new double[][] {{low, 0}, {high, 0}, {lowS, 1}, {highS, 1}, {downS, 1}, {constantRate, 0}}) {
                if (!(v[0] > 0) || Double.isInfinite(v[0])) {
                    throw new IllegalArgumentException("rates and durations must be finite numbers > 0, got " + v[0]);
                }
            }
            if (max < 1 || max > 16) {
                throw new IllegalArgumentException("--max must be in [1, 16], got " + max);
            }
            if (concurrency < 1 || concurrency > 256) {
                throw new IllegalArgumentException("--concurrency must be in [1, 256], got " + concurrency);
            }
            return new dev.torus.cli.bench.ServeBench(new dev.torus.cli.bench.ServeBench.Options(out, json, emulate,
                    batchEmulate, low, high, lowS, highS, downS, constantS, constantRate, max, target, maxBatch,
                    concurrency, batchingS, real, poisson), System.out).run();
        }
    }

    /** Membership changes of an elastic job, timed. */
    @Command(name = "elastic", mixinStandardHelpOptions = true,
            description = "Worker JVMs of a tiny model through a join (2->3, 4->8), a graceful leave and a kill -9 "
                    + "(4->3): seconds from the event to the first step completed after it, against the goals; and the "
                    + "cost of committing the state every step (~1 min on 2 cores).")
    static final class Elastic implements Callable<Integer> {
        @Option(names = "--json", description = "Also write one JSON object per row to FILE.")
        Path json;

        @Override
        public Integer call() throws Exception {
            new dev.torus.cli.bench.ElasticBench(System.out).run(json);
            return 0;
        }
    }

    /** Pipeline schedules: measured bubble against theory, with emulated compute. */
    @Command(name = "pipeline", mixinStandardHelpOptions = true,
            description = "One JVM per pipeline stage, with emulated compute (forward and backward park for fixed "
                    + "times) or the MLP (--mlp): the measured idle fraction of GPipe, 1F1B, interleaved 1F1B and "
                    + "ZB-H1 against theory, and stage 0's peak of stashed micro-batches against the schedule's "
                    + "promise (~60 s on 2 cores).")
    static final class Pipeline implements Callable<Integer> {
        @Option(names = "--json", description = "Also write one JSON object per row to FILE.")
        Path json;

        @Option(names = "--stages", defaultValue = "4", description = "Stages, one JVM each (default ${DEFAULT-VALUE}).")
        int stages;

        @Option(names = "--micro-batches", split = ",", defaultValue = "4,8,16",
                description = "Micro-batch counts (default ${DEFAULT-VALUE}).")
        List<Integer> microBatches;

        @Option(names = "--forward-ms", defaultValue = "10", description = "Emulated forward time (default ${DEFAULT-VALUE}).")
        double forwardMs;

        @Option(names = "--backward-ms", defaultValue = "10", description = "Emulated input-gradient time (B; default "
                + "${DEFAULT-VALUE}).")
        double backwardMs;

        @Option(names = "--weight-ms", defaultValue = "10", description = "Emulated weight-gradient time (W, run apart "
                + "by zb-h1, with B by the others; default ${DEFAULT-VALUE}).")
        double weightMs;

        @Option(names = "--steps", defaultValue = "3", description = "Timed steps (default ${DEFAULT-VALUE}).")
        int steps;

        @Option(names = "--trace", description = "Write a Chrome trace (Perfetto, chrome://tracing) of each "
                + "configuration's last step to FILE.")
        Path trace;

        @Option(names = "--schedules", split = ",", defaultValue = "gpipe,1f1b,interleaved:2,zb-h1",
                description = "Schedules (default ${DEFAULT-VALUE}).")
        List<String> schedules;

        @Option(names = "--mlp", description = "Real compute instead of emulated: the demo's MLP as WIDTH:BLOCKS:ROWS "
                + "(for example 256:8:64), its layers split over the stages; the stages then share the cores.")
        String mlp;

        @Override
        public Integer call() throws Exception {
            for (int m : microBatches) {
                if (m < 1 || m > 1024) {
                    throw new IllegalArgumentException("--micro-batches must all be in [1, 1024], got " + m);
                }
            }
            if (stages > 16) {
                throw new IllegalArgumentException("--stages must be at most 16 (one JVM each), got " + stages);
            }
            if (trace != null && (trace.toAbsolutePath().getParent() == null
                    || !java.nio.file.Files.isDirectory(trace.toAbsolutePath().getParent()))) {
                throw new IllegalArgumentException("--trace " + trace + ": its directory does not exist");
            }
            List<dev.torus.parallel.pipeline.PipelineSchedule> parsed = new java.util.ArrayList<>();
            for (String sch : schedules) {
                parsed.add(dev.torus.parallel.pipeline.PipelineSchedule.parse("--schedules", sch));
            }
            int[] real = mlp == null ? null : dev.torus.cli.bench.PipelineBench.parseMlp(mlp);
            new dev.torus.cli.bench.PipelineBench(System.out, stages, forwardMs, backwardMs, weightMs, steps)
                    .compute(real).run(parsed, microBatches, json, trace);
            return 0;
        }
    }

    /** Tensor-parallel MLP block against data parallelism on the same ranks. */
    @Command(name = "tp", mixinStandardHelpOptions = true,
            description = "Megatron's MLP block on t in-process ranks, tensor-parallel against data-parallel: step time, "
                    + "all-reduces per step and floats reduced (~30 s on 2 cores).")
    static final class Tp implements Callable<Integer> {
        @Option(names = "--json", description = "Also write one JSON object per row to FILE.")
        Path json;

        @Option(names = "--ranks", split = ",", defaultValue = "2,4", description = "Degrees (default ${DEFAULT-VALUE}).")
        List<Integer> ranks;

        @Option(names = "--in", defaultValue = "256", description = "Input and output features (default ${DEFAULT-VALUE}).")
        int in;

        @Option(names = "--hidden", defaultValue = "1024", description = "Hidden features (default ${DEFAULT-VALUE}).")
        int hidden;

        @Option(names = "--rows", defaultValue = "64", description = "Rows per step (default ${DEFAULT-VALUE}).")
        int rows;

        @Option(names = "--steps", defaultValue = "10", description = "Timed steps (default ${DEFAULT-VALUE}).")
        int steps;

        @Override
        public Integer call() throws Exception {
            for (int t : ranks) {
                if (t < 1) {
                    throw new IllegalArgumentException("--ranks must all be >= 1, got " + t);
                }
            }
            new dev.torus.cli.bench.TpBench(System.out, in, hidden, rows, steps).run(ranks, json);
            return 0;
        }
    }

    /** What authentication costs the forming of a world. */
    @Command(name = "rendezvous", mixinStandardHelpOptions = true,
            description = "Forms worlds of in-process ranks (each with its own store connection, as fromEnv() does) "
                    + "against an open and an authenticated embedded ZooKeeper, alternating, and reports the median "
                    + "time of each and their ratio.")
    static final class Rendezvous implements Callable<Integer> {
        @Option(names = "--json", description = "Also write one JSON object per row to FILE.")
        Path json;

        @Option(names = "--nproc", split = ",", defaultValue = "2,4", description = "Rank counts (default ${DEFAULT-VALUE}).")
        List<Integer> nproc;

        @Option(names = "--rounds", defaultValue = "20", description = "Timed rounds of each kind (default ${DEFAULT-VALUE}).")
        int rounds;

        @Option(names = "--cold-rounds", defaultValue = "5", description = "Rounds of each kind with every rank a fresh "
                + "JVM timing fromEnv() (default ${DEFAULT-VALUE}; 0 skips them).")
        int coldRounds;

        @Override
        public Integer call() throws Exception {
            if (rounds < 1) {
                throw new IllegalArgumentException("--rounds: expected a positive integer, got " + rounds);
            }
            if (coldRounds < 0) {
                throw new IllegalArgumentException("--cold-rounds: expected an integer >= 0, got " + coldRounds);
            }
            for (int n : nproc) {
                if (n < 1 || n > 32) {
                    throw new IllegalArgumentException("--nproc: expected rank counts in [1, 32], got " + n);
                }
            }
            new dev.torus.cli.bench.RendezvousBench(System.out, rounds, coldRounds).run(nproc, json);
            return 0;
        }
    }

    /** Data-parallel training throughput, hooks and overlap. */
    @Command(name = "dp", mixinStandardHelpOptions = true,
            description = "Data-parallel training of a block MLP on worker processes (launcher, embedded ZooKeeper, "
                    + "Gloo): samples/s against one process alone, bytes on the wire per hook, and overlap against "
                    + "reducing after backward, all measured in this run.")
    static final class Dp implements Callable<Integer> {
        @Option(names = "--json", description = "Also write one JSON object per row to FILE.")
        Path json;

        @Option(names = "--nproc", split = ",", defaultValue = "2,4", description = "Rank counts (default ${DEFAULT-VALUE}).")
        List<Integer> nproc;

        @Option(names = "--hooks", split = ",", defaultValue = "none,allreduce,fp16,bf16,int8",
                description = "Hooks (default ${DEFAULT-VALUE}); 'none' also runs without overlap.")
        List<String> hooks;

        @Option(names = "--width", defaultValue = "512", description = "Hidden width (default ${DEFAULT-VALUE}).")
        int width;

        @Option(names = "--blocks", defaultValue = "8", description = "Blocks (default ${DEFAULT-VALUE}).")
        int blocks;

        @Option(names = "--batch", defaultValue = "64", description = "Rows per rank per step (default ${DEFAULT-VALUE}).")
        int batch;

        @Option(names = "--steps", defaultValue = "20", description = "Timed steps (default ${DEFAULT-VALUE}).")
        int steps;

        @Option(names = "--bucket", defaultValue = "2MiB", description = "Bucket capacity (default ${DEFAULT-VALUE}; "
                + "small enough that an 8-block model has several buckets to overlap).")
        String bucket;

        @Option(names = "--peer", description = "Also run PyTorch's DistributedDataParallel (gloo) on the same model, "
                + "batch and buckets at every rank count (tools/baselines/torch_ddp.py) and print Torus / PyTorch.")
        boolean peer;

        @Option(names = "--python", description = "Python with PyTorch for --peer (default: /usr/bin/python3 when "
                + "present, Debian's python3-torch; else python3).")
        String python;

        @Override
        public Integer call() throws Exception {
            for (String[] v : new String[][] {{"--width", "" + width}, {"--blocks", "" + blocks}, {"--batch", "" + batch},
                    {"--steps", "" + steps}}) {
                if (Long.parseLong(v[1]) < 1) {
                    throw new IllegalArgumentException(v[0] + ": expected a positive integer, got " + v[1]);
                }
            }
            for (int n : nproc) {
                if (n < 1 || n > 64) {
                    throw new IllegalArgumentException("--nproc: expected rank counts in [1, 64], got " + n);
                }
            }
            for (String h : hooks) {
                dev.torus.parallel.CommHook.parse("--hooks", h);
            }
            long bucketBytes = parseSize("--bucket", bucket);
            var bench = new dev.torus.cli.bench.DpBench(System.out, width, blocks, batch, steps, bucketBytes);
            List<BenchRow> rows = bench.run(nproc, hooks, json);
            if (peer) {
                String py = python != null ? python
                        : java.nio.file.Files.isExecutable(Path.of("/usr/bin/python3")) ? "/usr/bin/python3" : "python3";
                bench.peer(py, nproc, rows);
            }
            return 0;
        }
    }

    @Command(name = "hosts", mixinStandardHelpOptions = true,
            description = "Across test hosts in network namespaces (tools/netns-cluster.sh; needs root), once per link "
                    + "rate: fp32 all-reduce against the native Gloo loop, int8 against fp32, and a dp step with the "
                    + "int8 hook against fp32.")
    static final class Hosts implements Callable<Integer> {
        @Option(names = "--hosts", defaultValue = "2", description = "Test hosts, one rank each (default ${DEFAULT-VALUE}).")
        int hosts;

        @Option(names = "--rates", split = ",", defaultValue = "none,10gbit,1gbit",
                description = "Link rates for tc (none = unshaped) (default ${DEFAULT-VALUE}).")
        List<String> rates;

        @Option(names = "--size", defaultValue = "64MiB", description = "All-reduce size (default ${DEFAULT-VALUE}).")
        String size;

        @Override
        public Integer call() throws Exception {
            if (hosts < 2 || hosts > 8) {
                throw new IllegalArgumentException("--hosts must be in [2, 8], got " + hosts);
            }
            for (String r : rates) {
                if (!r.equals("none") && !r.matches("[0-9]+(\\.[0-9]+)?[kmg]?bit")) {
                    throw new IllegalArgumentException("--rates: expected none or a tc rate like 1gbit, got '" + r + "'");
                }
            }
            long bytes = parseSize("--size", size);
            if (bytes < 4096) {
                throw new IllegalArgumentException("--size must be >= 4KiB, got " + size);
            }
            Path d = Path.of("tools", "baselines", "build", "gloo_bench");
            Path base = java.nio.file.Files.isExecutable(d) ? d : null;
            var outcome = new dev.torus.cli.bench.HostsBench(System.out, hosts, bytes, base).run(rates);
            return outcome == null ? 77 : 0;
        }
    }

    /** Quantization kernels against memcpy. */
    @Command(name = "quant", mixinStandardHelpOptions = true,
            description = "Quantize/dequantize/cast kernels: GB/s of bytes read + written, and the ratio to memcpy "
                    + "of the same bytes on the same device. Starts with an exact self-check of every kernel.")
    static final class Quant implements Callable<Integer> {
        @Option(names = "--json", description = "Also write one JSON object per row to FILE.")
        Path json;

        @Option(names = "--device", split = ",", description = "cpu, cuda or cuda:N (repeatable); default: cpu, "
                + "plus cuda:0 when a GPU is usable.")
        List<String> devices;

        @Option(names = "--min-size", defaultValue = "1MiB", description = "Smallest fp32 input size (default ${DEFAULT-VALUE}).")
        String minSize;

        @Option(names = "--max-size", defaultValue = "1GiB", description = "Largest fp32 input size (default ${DEFAULT-VALUE}); "
                + "sizes grow by 4x.")
        String maxSize;

        @Option(names = "--kernels", description = "Only kernels whose name contains this text.")
        String filter;

        @Option(names = "--min-time", defaultValue = "0.1", description = "Seconds per timed batch (default ${DEFAULT-VALUE}).")
        double minTime;

        @Option(names = "--threads", description = "CPU kernel threads (default: all cores).")
        Integer threads;

        @Option(names = "--dump", description = "Also write a seeded input and the outputs of the kernels that have "
                + "a PyTorch peer to DIR/<device>/, for tools/baselines/torch_quant.py --check.")
        Path dump;

        @Override
        public Integer call() throws Exception {
            if (threads != null) {
                NativeLibrary.setCpuThreads(threads);
            }
            if (!(minTime > 0) || minTime > 60) {
                throw new IllegalArgumentException("--min-time: expected seconds in (0, 60], got " + minTime);
            }
            List<Device> list = devicesOrDefault(devices);
            long lo = parseSize("--min-size", minSize);
            long hi = parseSize("--max-size", maxSize);
            if (dump != null) {
                for (Device d : list) {
                    Path dir = dump.resolve(d.toString().replace(':', '_'));
                    dev.torus.cli.bench.QuantPeerDump.write(d, dir, 20261123L);
                    System.out.println("# peer-check input and outputs for " + d + " written to " + dir);
                }
            }
            List<BenchRow> rows = new QuantBench(System.out, lo, hi, filter, minTime).run(list, json);
            printGoals(rows);
            return 0;
        }

        private static void printGoals(List<BenchRow> rows) {
            // Goals of the foundation issue: CPU >= 0.8 of memcpy; GPU >= 0.9 of a device copy for >= 64 MiB.
            for (String dev : rows.stream().map(r -> (String) r.get("device")).distinct().toArray(String[]::new)) {
                double goal = dev.equals("cpu") ? 0.8 : 0.9;
                long minBytes = dev.equals("cpu") ? 0 : 64L << 20;
                java.util.Map<String, Double> worst = new java.util.LinkedHashMap<>();
                for (BenchRow r : rows) {
                    if (r.get("device").equals(dev) && (Long) r.get("input_bytes") >= minBytes) {
                        worst.merge((String) r.get("kernel"), (Double) r.get("ratio"), Math::min);
                    }
                }
                System.out.printf("# %s: goal ratio >= %.2f%s; lowest ratio per kernel:%n", dev, goal,
                        minBytes > 0 ? " (inputs >= 64 MiB)" : "");
                worst.forEach((k, v) -> System.out.printf("#   %-32s %6.3f  %s%n", k, v, v >= goal ? "meets" : "below goal"));
            }
        }
    }

    /** The weight-only int8 GEMM against the fp32 GEMM of the same shape. */
    @Command(name = "gemm-int8", mixinStandardHelpOptions = true,
            description = "Weight-only int8 GEMM (int8 weights x fp32 activations, dev.torus.serve.Int8Gemm) against "
                    + "the fp32 GEMM of the same shape through Linear.forward (OpenBLAS on the CPU, cuBLAS on a GPU), "
                    + "in the same run: GFLOP/s of each, their ratio, the weight bytes ratio and the quantization "
                    + "error (~1 min on 2 cores).")
    static final class GemmInt8 implements Callable<Integer> {
        @Option(names = "--json", description = "Also write one JSON object per row to FILE.")
        Path json;

        @Option(names = "--device", split = ",", description = "cpu, cuda or cuda:N (repeatable); default: cpu, "
                + "plus cuda:0 when a GPU is usable.")
        List<String> devices;

        @Option(names = "--rows", split = ",", defaultValue = "1,8,32,128",
                description = "M, the rows of x (default ${DEFAULT-VALUE}).")
        List<Integer> rows;

        @Option(names = "--shapes", split = ",", defaultValue = "128x128,1024x1024,4096x4096",
                description = "KxN: input x output features (default ${DEFAULT-VALUE}).")
        List<String> shapes;

        @Option(names = "--min-time", defaultValue = "0.1", description = "Seconds per timed batch (default ${DEFAULT-VALUE}).")
        double minTime;

        @Option(names = "--threads", description = "Torus CPU kernel threads (default: all cores). OpenBLAS takes "
                + "OPENBLAS_NUM_THREADS.")
        Integer threads;

        @Override
        public Integer call() throws Exception {
            if (threads != null) {
                NativeLibrary.setCpuThreads(threads);
            }
            if (!(minTime > 0) || minTime > 60) {
                throw new IllegalArgumentException("--min-time: expected seconds in (0, 60], got " + minTime);
            }
            for (int m : rows) {
                if (m < 1 || m > 1 << 16) {
                    throw new IllegalArgumentException("--rows: expected row counts in [1, 65536], got " + m);
                }
            }
            List<int[]> kn = new ArrayList<>();
            for (String sh : shapes) {
                String[] p = sh.trim().toLowerCase(java.util.Locale.ROOT).split("x");
                int k;
                int n;
                try {
                    k = p.length == 2 ? Integer.parseInt(p[0]) : -1;
                    n = p.length == 2 ? Integer.parseInt(p[1]) : -1;
                } catch (NumberFormatException e) {
                    k = -1;
                    n = -1;
                }
                if (k < 1 || n < 1 || (long) k * n > 1L << 28) {
                    throw new IllegalArgumentException("--shapes: expected KxN with K, N >= 1 and K * N <= 2^28, got '"
                            + sh + "'");
                }
                kn.add(new int[] {k, n});
            }
            List<Device> list = devicesOrDefault(devices);
            for (Device d : list) {
                Path file = json == null || list.size() == 1 ? json
                        : json.resolveSibling(json.getFileName() + "." + d.toString().replace(':', '-'));
                new dev.torus.cli.bench.GemmInt8Bench(System.out, rows, kn, minTime).run(d, file);
            }
            return 0;
        }
    }

    /** Checkpoint policies: step time and peak activation memory against no checkpointing. */
    @Command(name = "recompute", mixinStandardHelpOptions = true,
            description = "Training step of a block MLP under every checkpoint policy and storage: step time and peak "
                    + "activation memory as ratios to no checkpointing in the same run, after checking that FLOAT32 "
                    + "checkpoints give bit-identical gradients (#wrong).")
    static final class Recompute implements Callable<Integer> {
        @Option(names = "--json", description = "Also write one JSON object per row to FILE.")
        Path json;

        @Option(names = "--device", split = ",", description = "cpu, cuda or cuda:N (repeatable); default: cpu, "
                + "plus cuda:0 when a GPU is usable.")
        List<String> devices;

        @Option(names = "--blocks", defaultValue = "32", description = "MLP blocks (default ${DEFAULT-VALUE}).")
        int blocks;

        @Option(names = "--width", defaultValue = "512", description = "Hidden width (default ${DEFAULT-VALUE}).")
        int width;

        @Option(names = "--batch", defaultValue = "256", description = "Rows per step (default ${DEFAULT-VALUE}).")
        int batch;

        @Option(names = "--dropout", defaultValue = "0.1", description = "Dropout probability (default ${DEFAULT-VALUE}).")
        float dropout;

        @Option(names = "--steps", defaultValue = "5", description = "Timed steps per round (default ${DEFAULT-VALUE}).")
        int steps;

        @Option(names = "--rounds", defaultValue = "3", description = "Rounds; each configuration reports its best "
                + "(default ${DEFAULT-VALUE}).")
        int rounds;

        @Option(names = "--residual", description = "Residual blocks (x + block(x)); a residual block recomputes its "
                + "inner layers in backward under every policy.")
        boolean residual;

        @Option(names = "--policy", split = ",", description = "Policies: none, every-K, sqrt(n), selective, budget(P%%) "
                + "(P%% of the none peak). Default: all, plus sqrt(n) with fp16, bf16 and int8 checkpoints.")
        List<String> policies;

        @Override
        public Integer call() throws Exception {
            for (String[] v : new String[][] {{"--blocks", "" + blocks}, {"--width", "" + width}, {"--batch", "" + batch},
                    {"--steps", "" + steps}, {"--rounds", "" + rounds}}) {
                if (Long.parseLong(v[1]) < 1) {
                    throw new IllegalArgumentException(v[0] + ": expected a positive integer, got " + v[1]);
                }
            }
            if (!(dropout >= 0f && dropout < 1f)) {
                throw new IllegalArgumentException("--dropout: expected a probability in [0, 1), got " + dropout);
            }
            List<dev.torus.cli.bench.RecomputeBench.Config> configs;
            if (policies == null || policies.isEmpty()) {
                configs = dev.torus.cli.bench.RecomputeBench.defaultConfigs();
            } else {
                configs = new ArrayList<>();
                configs.add(new dev.torus.cli.bench.RecomputeBench.Config("none",
                        dev.torus.recompute.CheckpointStorage.fp32()));
                for (String p : policies) {
                    dev.torus.cli.bench.RecomputeBench.policy(p.trim(), 1);   // validates the name
                    if (!p.trim().equals("none")) {
                        configs.add(new dev.torus.cli.bench.RecomputeBench.Config(p.trim(),
                                dev.torus.recompute.CheckpointStorage.fp32()));
                    }
                }
            }
            List<Device> list = devicesOrDefault(devices);
            int wrong = 0;
            List<BenchRow> all = new ArrayList<>();
            for (Device d : list) {
                Path file = json == null || list.size() == 1 ? json
                        : json.resolveSibling(json.getFileName() + "." + d.toString().replace(':', '-'));
                List<BenchRow> rows = new dev.torus.cli.bench.RecomputeBench(System.out, blocks, width, batch, dropout,
                        steps, rounds).residual(residual).run(d, configs, file);
                all.addAll(rows);
            }
            for (BenchRow r : all) {
                wrong += (Integer) r.get("#wrong");
            }
            System.out.println("# goals: sqrt(n) <= 1.35x time for >= 3x less activation memory; selective <= 1.05x "
                    + "time with >= 40% of activation memory saved");
            for (BenchRow r : all) {
                String p = (String) r.get("policy");
                boolean exact = r.get("storage").equals("fp32");
                double t = (Double) r.get("time_ratio");
                double m = (Double) r.get("memory_ratio");
                if (exact && p.equals("sqrt(n)")) {
                    System.out.printf("#   %s sqrt(n): %.3fx time, %.2fx less memory: %s%n", r.get("device"), t, 1 / m,
                            t <= 1.35 && m <= 1 / 3.0 ? "meets" : "below goal");
                } else if (exact && p.equals("selective")) {
                    System.out.printf("#   %s selective: %.3fx time, %.0f%% memory saved: %s%n", r.get("device"), t,
                            100 * (1 - m), t <= 1.05 && m <= 0.6 ? "meets" : "below goal");
                }
            }
            if (wrong > 0) {
                System.out.println("# FAILED: " + wrong + " gradient values differ from the no-checkpoint run");
                return 1;
            }
            return 0;
        }
    }

    /** The devices named by {@code --device}, or cpu plus cuda:0 when a GPU is usable (saying why not otherwise). */
    static List<Device> devicesOrDefault(List<String> devices) {
        List<Device> list = new ArrayList<>();
        if (devices == null || devices.isEmpty()) {
            list.add(Device.cpu());
            if (Device.isCudaAvailable()) {
                list.add(Device.cuda(0));
            } else {
                System.out.println("# cuda: skipped (" + Device.cudaUnavailableCause() + ")");
            }
        } else {
            for (String d : devices) {
                list.add(parseDevice(d));
            }
        }
        return list;
    }

    static Device parseDevice(String s) {
        String t = s.trim().toLowerCase(java.util.Locale.ROOT);
        if (t.equals("cpu")) {
            return Device.cpu();
        }
        if (t.equals("cuda")) {
            return Device.cuda(0);
        }
        if (t.startsWith("cuda:")) {
            try {
                return Device.cuda(Integer.parseInt(t.substring(5)));
            } catch (NumberFormatException e) {
                // fall through
            }
        }
        throw new IllegalArgumentException("--device: expected cpu, cuda or cuda:N, got '" + s + "'");
    }

    static long parseSize(String name, String s) {
        String t = s.trim();
        long mult = 1;
        String[][] units = {{"GiB", String.valueOf(1L << 30)}, {"MiB", String.valueOf(1L << 20)},
            {"KiB", String.valueOf(1L << 10)}, {"B", "1"}};
        for (String[] u : units) {
            if (t.endsWith(u[0])) {
                mult = Long.parseLong(u[1]);
                t = t.substring(0, t.length() - u[0].length()).trim();
                break;
            }
        }
        try {
            long v = Long.parseLong(t);
            if (v <= 0 || v > Long.MAX_VALUE / mult) {
                throw new NumberFormatException();
            }
            return v * mult;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(name + ": expected a positive size such as 4MiB or 1GiB, got '" + s + "'");
        }
    }

    /** Shared options of the collective sweeps. */
    abstract static class Collective implements Callable<Integer> {
        @Option(names = "--json", description = "Also write one JSON object per row to FILE.")
        Path json;

        @Option(names = "--nproc", split = ",", defaultValue = "2,4",
                description = "Local worker processes; a list runs one sweep per value (default ${DEFAULT-VALUE}).")
        List<Integer> nproc;

        @Option(names = {"-b", "--min-bytes"}, defaultValue = "4", description = "Smallest buffer (default ${DEFAULT-VALUE}).")
        String minBytes;

        @Option(names = {"-e", "--max-bytes"}, defaultValue = "64MiB", description = "Largest buffer (default ${DEFAULT-VALUE}).")
        String maxBytes;

        @Option(names = "--min-time", defaultValue = "0.2", description = "Seconds per timed size (default ${DEFAULT-VALUE}).")
        double minTime;

        @Option(names = "--algo", defaultValue = "auto",
                description = "Gloo all-reduce algorithm: auto, ring, bcube or hd (default ${DEFAULT-VALUE}).")
        String algo;

        @Option(names = "--backend", defaultValue = "gloo",
                description = "gloo (CPU tensors) or nccl (one CUDA device per process) (default ${DEFAULT-VALUE}).")
        String backend;

        @Option(names = "--baseline", description = "Native Gloo baseline binary (default: "
                + "tools/baselines/build/gloo_bench when present; 'none' to skip).")
        String baseline;

        @Option(names = "--transport", description = "Gloo backend: both (Torus over Gloo's TCP, then over shared "
                + "memory, in the same run; the default for allreduce, allgather and broadcast), auto, shm or gloo.")
        String transport;

        abstract String op();

        String compression() {
            return "none";
        }

        String transport() {
            boolean shmOps = List.of("allreduce", "allgather", "broadcast").contains(op());
            if (transport == null) {
                return backend.equals("gloo") && compression().equals("none") && shmOps ? "both" : "auto";
            }
            if (!List.of("both", "auto", "shm", "gloo").contains(transport)) {
                throw new IllegalArgumentException("--transport must be both, auto, shm or gloo, got '" + transport + "'");
            }
            if (transport.equals("both") && (!backend.equals("gloo") || !compression().equals("none") || !shmOps)) {
                throw new IllegalArgumentException("--transport both compares the transports of uncompressed allreduce, "
                        + "allgather and broadcast on the gloo backend");
            }
            return transport;
        }

        @Override
        public Integer call() throws Exception {
            long lo = parseSize("--min-bytes", minBytes);
            long hi = parseSize("--max-bytes", maxBytes);
            if (lo < 4 || hi < lo) {
                throw new IllegalArgumentException("--min-bytes must be >= 4 and <= --max-bytes, got " + lo + " and " + hi);
            }
            if (!List.of("auto", "ring", "bcube", "hd").contains(algo)) {
                throw new IllegalArgumentException("--algo must be auto, ring, bcube or hd, got '" + algo + "'");
            }
            boolean wrong = false;
            if (!List.of("gloo", "nccl").contains(backend)) {
                throw new IllegalArgumentException("--backend must be gloo or nccl, got '" + backend + "'");
            }
            if (backend.equals("nccl") && !compression().equals("none")) {
                throw new IllegalArgumentException("--compression is CPU-only for now; use it with --backend gloo");
            }
            Path base = null;
            if (backend.equals("nccl")) {
                dev.torus.Device.ensureCudaAvailable(); // fail here, not in every worker process
                base = null; // the native Gloo loop is a CPU baseline; NCCL is compared with PyTorch by tools/baselines
            } else if (baseline == null) {
                Path d = Path.of("tools", "baselines", "build", "gloo_bench");
                base = java.nio.file.Files.isExecutable(d) ? d : null;
            } else if (!baseline.equals("none")) {
                base = Path.of(baseline);
                if (!java.nio.file.Files.isExecutable(base)) {
                    throw new IllegalArgumentException("--baseline must name an executable, got '" + baseline + "'");
                }
            }
            boolean compressed = !compression().equals("none");
            boolean both = transport().equals("both");
            String[] cols = both
                    ? new String[] {"nproc", "size", "count", "type", "redop", "time_us", "busbw", "native_busbw", "ratio",
                            "shm_time_us", "shm_busbw", "shm_x", "wrong"}
                    : compressed
                    ? new String[] {"nproc", "size", "count", "type", "redop", "time_us", "algbw", "busbw", "wrong",
                            "plain_time_us", "speedup", "wire_ratio"}
                    : new String[] {"nproc", "size", "count", "type", "redop", "time_us", "algbw", "busbw", "wrong",
                            "native_busbw", "ratio"};
            int[] widths = both ? new int[] {6, 12, 11, 7, 6, 12, 9, 13, 7, 12, 10, 8, 7} : compressed ? new int[] {6, 12, 11, 7, 6, 12, 9, 9, 7, 14, 9, 11}
                    : new int[] {6, 12, 11, 7, 6, 12, 9, 9, 7, 13, 7};
            try (dev.torus.cli.bench.BenchReport report = new dev.torus.cli.bench.BenchReport(System.out, json, cols,
                    widths)) {
                for (int n : nproc) {
                    if (n < 1 || n > 64) {
                        throw new IllegalArgumentException("--nproc values must be in 1..64, got " + n);
                    }
                    report.header("# torus-bench " + op() + " (" + backend + ", " + n + " processes on this host, compression "
                            + compression() + ", algo " + algo + "); GB/s; " + (compressed
                            ? "plain = uncompressed Torus all-reduce in the same run; wire_ratio = bytes sent / plain's"
                            : backend.equals("nccl")
                                    ? "PyTorch's peer: tools/baselines/torch_allreduce.py"
                                    : "native = C++ Gloo loop" + (base == null ? " (not run: build tools/baselines first)" : "")
                                    + (both ? "; time_us/busbw: Torus over Gloo TCP; shm_*: Torus over shared memory, "
                                            + "shm_x = shm_busbw / busbw" : ", transport " + transport())));
                    List<BenchRow> rows = new dev.torus.cli.bench.CollectiveBench(op(), n, lo, hi, minTime, compression(),
                            base, algo, backend, transport(), System.out).run(report);
                    if (both) {
                        report.note(shmGoals(op(), n, rows));
                    }
                    for (BenchRow r : rows) {
                        if (((Number) r.get("wrong")).longValue() != 0) {
                            System.err.println("torus-bench: wrong results at size " + r.get("size") + " with " + n
                                    + " processes");
                            wrong = true;
                        }
                    }
                }
            }
            return wrong ? 1 : 0;
        }
    }

    /** The shared-memory transport's goals, measured in this run: busbw at >= 1 MiB and latency at 4 KiB. */
    static String shmGoals(String op, int n, List<BenchRow> rows) {
        double worst = Double.MAX_VALUE;
        double median;
        List<Double> big = new java.util.ArrayList<>();
        Double small = null;
        for (BenchRow r : rows) {
            long size = ((Number) r.get("size")).longValue();
            double x = ((Number) r.get("shm_x")).doubleValue();
            if (size >= (1 << 20)) {
                big.add(x);
                worst = Math.min(worst, x);
            }
            if (size == 4096) {
                small = ((Number) r.get("shm_time_us")).doubleValue() / ((Number) r.get("time_us")).doubleValue();
            }
        }
        java.util.Collections.sort(big);
        median = big.isEmpty() ? Double.NaN : big.get(big.size() / 2);
        String goalBw = big.isEmpty() ? "no size >= 1 MiB in this sweep"
                : String.format("min %.2fx, median %.2fx (%s)", worst, median, worst >= 3 ? "met" : "missed");
        String goalLat = small == null ? "4 KiB not in this sweep"
                : String.format("%.2f of Gloo's time (%s)", small, small <= 1.0 / 3 ? "met" : "missed");
        return String.format("# goal (%s, %d processes): shm busbw >= 3x Torus-over-Gloo at >= 1 MiB: %s; "
                + "shm latency at 4 KiB <= 1/3 of Gloo's: %s", op, n, goalBw, goalLat);
    }

    @Command(name = "allreduce", mixinStandardHelpOptions = true,
            description = "All-reduce (sum, fp32) size sweep; busbw = algbw x 2(n-1)/n.")
    static final class AllReduce extends Collective {
        @Option(names = "--compression", defaultValue = "none",
                description = "none, fp16, bf16 or int8 (blockwise 256 with error feedback) (default ${DEFAULT-VALUE}).")
        String compression;

        @Override
        String op() {
            return "allreduce";
        }

        @Override
        String compression() {
            if (!List.of("none", "fp16", "bf16", "int8").contains(compression)) {
                throw new IllegalArgumentException("--compression must be none, fp16, bf16 or int8, got '" + compression + "'");
            }
            return compression;
        }
    }

    @Command(name = "allgather", mixinStandardHelpOptions = true,
            description = "All-gather size sweep (size = gathered buffer); busbw = algbw x (n-1)/n.")
    static final class AllGather extends Collective {
        @Override
        String op() {
            return "allgather";
        }
    }

    @Command(name = "reducescatter", mixinStandardHelpOptions = true,
            description = "Reduce-scatter size sweep (size = input buffer); busbw = algbw x (n-1)/n.")
    static final class ReduceScatter extends Collective {
        @Override
        String op() {
            return "reducescatter";
        }
    }

    @Command(name = "broadcast", mixinStandardHelpOptions = true,
            description = "Broadcast from rank 0 size sweep; busbw = algbw.")
    static final class Broadcast extends Collective {
        @Override
        String op() {
            return "broadcast";
        }
    }

    @Command(name = "sendrecv", mixinStandardHelpOptions = true,
            description = "Ring send/recv (each rank sends to rank+1) size sweep; busbw = algbw.")
    static final class SendRecv extends Collective {
        @Override
        String op() {
            return "sendrecv";
        }
    }
}
