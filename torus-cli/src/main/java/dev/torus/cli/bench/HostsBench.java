package dev.torus.cli.bench;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.TimeUnit;

/**
 * {@code torus-bench hosts}: the collectives and data-parallel training across test hosts
 * made by {@code tools/netns-cluster.sh} (one rank per network namespace, links shaped by
 * {@code tc}), once per link rate, each against its own baseline in the same run:
 * Torus's fp32 all-reduce against the native Gloo loop on the same hosts, the int8
 * compressed all-reduce against the fp32 one, and a data-parallel step with the int8 hook
 * against the fp32 all-reduce hook. Needs root; removes every namespace it made.
 */
public final class HostsBench {
    private final PrintStream out;
    private final int hosts;
    private final long bytes;
    private final Path baseline;

    public HostsBench(PrintStream out, int hosts, long bytes, Path baseline) {
        this.out = out;
        this.hosts = hosts;
        this.bytes = bytes;
        this.baseline = baseline;
    }

    record Outcome(String rate, double torusVsNative, double int8Speedup, double dpInt8Speedup, double fp32StepMs,
                   double int8StepMs) {}

    /** Returns null when test hosts cannot be made here (the reason is printed). */
    public List<Outcome> run(List<String> rates) throws Exception {
        Path script = Path.of("tools", "netns-cluster.sh");
        String prefix = "tb" + ProcessHandle.current().pid() % 10000;
        List<Outcome> outcomes = new ArrayList<>();
        for (String rate : rates) {
            String problem = script(script, prefix, rate.equals("none") ? List.of("up", "" + hosts)
                    : List.of("up", "" + hosts, rate));
            try {
                if (problem != null) {
                    out.println("# hosts: test hosts cannot be made here (" + problem + "); not run");
                    return null;
                }
                TestHosts th = new TestHosts(prefix, hosts);
                out.println("## link: " + (rate.equals("none") ? "unshaped veth" : rate + " (tc tbf on each host's egress)")
                        + ", " + hosts + " hosts, one rank each");
                double ratio = Double.NaN;
                double speed = Double.NaN;
                String[] cols = {"size", "time_us", "busbw", "native_busbw", "ratio", "plain_time_us", "speedup",
                        "wire_ratio"};
                int[] widths = {12, 12, 9, 13, 7, 14, 9, 11};
                try (BenchReport report = new BenchReport(out, null, cols, widths)) {
                    report.header("# fp32 all-reduce, Torus over Gloo against the native Gloo loop on the same hosts");
                    List<BenchRow> rows = new CollectiveBench("allreduce", hosts, bytes, bytes, 0.5, "none", baseline,
                            "auto", "gloo", "gloo", out).on(th).run(report);
                    Object r = rows.get(0).get("ratio");
                    ratio = r instanceof Number n ? n.doubleValue() : Double.NaN;
                    report.header("# int8 compressed all-reduce (blockwise 256, error feedback) against fp32, same run");
                    rows = new CollectiveBench("allreduce", hosts, bytes, bytes, 0.5, "int8", null, "auto", "gloo",
                            "gloo", out).on(th).run(report);
                    speed = ((Number) rows.get(0).get("speedup")).doubleValue();
                }
                DpBench dp = new DpBench(out, 512, 8, 64, 20, 2L << 20).on(th);
                DpBench.Measured fp32 = dp.launch(hosts, "allreduce", true, false);
                DpBench.Measured int8 = dp.launch(hosts, "int8", true, false);
                out.printf(Locale.ROOT, "# dp step (8-block MLP, width 512, 8.2 MiB of gradients, batch 64 per rank): "
                        + "fp32 all-reduce hook %.1f ms, int8 hook %.1f ms (comm %.1f / %.1f ms)%n", fp32.stepMs(),
                        int8.stepMs(), fp32.commMs(), int8.commMs());
                outcomes.add(new Outcome(rate, ratio, speed, fp32.stepMs() / int8.stepMs(), fp32.stepMs(),
                        int8.stepMs()));
            } finally {
                script(script, prefix, List.of("down"));
            }
        }
        out.println("# summary across " + hosts + " test hosts (" + bytes / 1048576 + " MiB all-reduces)");
        out.println(String.format("# %-8s %16s %18s %16s", "link", "torus/native", "int8 vs fp32 AR", "dp int8 vs fp32"));
        for (Outcome o : outcomes) {
            out.println(String.format(Locale.ROOT, "  %-8s %16.3f %18.2f %16.2f", o.rate(), o.torusVsNative(),
                    o.int8Speedup(), o.dpInt8Speedup()));
        }
        for (Outcome o : outcomes) {
            if (o.rate().equals("1gbit")) {
                out.println(String.format(Locale.ROOT, "# goals at 1 Gbit/s: int8 all-reduce >= 3x fp32: %.2fx (%s); "
                        + "dp step with int8 >= 2x fp32: %.2fx (%s); Torus over Gloo >= 0.95x native: %.3f (%s)",
                        o.int8Speedup(), o.int8Speedup() >= 3 ? "met" : "missed", o.dpInt8Speedup(),
                        o.dpInt8Speedup() >= 2 ? "met" : "missed", o.torusVsNative(),
                        o.torusVsNative() >= 0.95 ? "met" : "missed"));
            }
        }
        return outcomes;
    }

    private static String script(Path script, String prefix, List<String> args) throws IOException,
            InterruptedException {
        List<String> cmd = new ArrayList<>(List.of(script.toString()));
        cmd.addAll(args);
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
        pb.environment().put("TORUS_NETNS_PREFIX", prefix);
        Process p = pb.start();
        String text = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
        if (!p.waitFor(60, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            return "netns-cluster.sh timed out";
        }
        return p.exitValue() == 0 ? null : text.isEmpty() ? "exit " + p.exitValue() : text;
    }
}
