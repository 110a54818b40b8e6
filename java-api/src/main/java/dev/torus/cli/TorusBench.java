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
        subcommands = {TorusBench.Quant.class})
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
        return new CommandLine(new TorusBench()).execute(args);
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

        @Override
        public Integer call() throws Exception {
            if (threads != null) {
                NativeLibrary.setCpuThreads(threads);
            }
            if (!(minTime > 0) || minTime > 60) {
                throw new CommandLine.ParameterException(new CommandLine(this), "--min-time: expected seconds in (0, 60], got " + minTime);
            }
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
            long lo = parseSize("--min-size", minSize);
            long hi = parseSize("--max-size", maxSize);
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
}
