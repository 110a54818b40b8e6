package dev.torus.cli.bench;

import dev.torus.zookeeper.EmbeddedZooKeeper;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;

/**
 * {@code torus-bench elastic}: worker processes of a tiny model through real membership
 * changes, timed from the event to the first step completed after it (times come from
 * the workers' own clocks, on one machine): a joiner from its JVM start (2→3 and 4→8),
 * a graceful leave from the SIGTERM (4→3), a kill -9 from the kill (4→3); and the cost
 * of committing the state every step against not committing, in the same world.
 */
public final class ElasticBench {
    private final PrintStream out;

    public ElasticBench(PrintStream out) {
        this.out = out;
    }

    /** One worker process and the lines it printed. */
    private static final class W implements AutoCloseable {
        final Process p;
        final long startMillis = System.currentTimeMillis();
        final List<String> lines = new CopyOnWriteArrayList<>();

        W(String endpoint, String run, int min, int max, long steps, int commitEvery, int sleepMs) throws Exception {
            ProcessBuilder pb = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                    "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp", System.getProperty("java.class.path"),
                    ElasticBenchWorker.class.getName());
            pb.environment().put("TORUS_RDZV_ENDPOINT", endpoint);
            pb.environment().put("TORUS_RUN_ID", run);
            pb.environment().put("ELASTIC_MIN", Integer.toString(min));
            pb.environment().put("ELASTIC_MAX", Integer.toString(max));
            pb.environment().put("ELASTIC_STEPS", Long.toString(steps));
            pb.environment().put("ELASTIC_COMMIT_EVERY", Integer.toString(commitEvery));
            pb.environment().put("ELASTIC_STEP_SLEEP_MS", Integer.toString(sleepMs));
            pb.redirectErrorStream(true);
            p = pb.start();
            Thread t = new Thread(() -> {
                try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
                    String line;
                    while ((line = r.readLine()) != null) {
                        if (line.startsWith("STEP ") || line.startsWith("LEAVE ") || line.startsWith("DONE")
                                || line.contains("Exception")) {
                            lines.add(line);
                        }
                    }
                } catch (Exception ignored) {
                    // gone
                }
            });
            t.setDaemon(true);
            t.start();
        }

        /** Epoch ms of the first STEP line at or after {@code sinceMillis} whose world is {@code world}; -1 if none. */
        long firstStep(int world, long sinceMillis) {
            for (String l : lines) {
                String[] f = l.split(" ");
                if (f[0].equals("STEP") && Integer.parseInt(f[3]) == world && Long.parseLong(f[5]) >= sinceMillis) {
                    return Long.parseLong(f[5]);
                }
            }
            return -1;
        }

        double meanStepMs(int from, int to) {
            return lines.stream().filter(l -> l.startsWith("STEP ")).map(l -> l.split(" "))
                    .filter(f -> Integer.parseInt(f[1]) >= from && Integer.parseInt(f[1]) < to)
                    .mapToDouble(f -> Double.parseDouble(f[7])).average().orElse(Double.NaN);
        }

        @Override
        public void close() throws InterruptedException {
            p.destroyForcibly();
            p.waitFor(10, TimeUnit.SECONDS);
        }
    }

    private static void await(String what, Predicate<Void> cond) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        while (!cond.test(null)) {
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("elastic bench: timed out waiting for " + what);
            }
            Thread.sleep(20);
        }
    }

    private static long earliest(List<W> ws, int world, long since) {
        long best = -1;
        for (W w : ws) {
            long t = w.firstStep(world, since);
            if (t >= 0 && (best < 0 || t < best)) {
                best = t;
            }
        }
        return best;
    }

    public List<BenchRow> run(Path json) throws Exception {
        List<BenchRow> rows = new ArrayList<>();
        try (EmbeddedZooKeeper zk = EmbeddedZooKeeper.startWithoutAuth();
             BenchReport report = new BenchReport(out, json, new String[] {"event", "seconds", "goal_s", "detail"},
                     new int[] {16, 10, 8, 50})) {
            report.header("# elastic: worker JVMs of a tiny MLP, from the event to the first step completed after it "
                    + "(detection bound 1 s)");
            String ep = zk.connectString();
            String tag = Long.toString(ProcessHandle.current().pid());
            // join 2 -> 3
            List<W> ws = new ArrayList<>();
            try {
                for (int i = 0; i < 2; i++) {
                    ws.add(new W(ep, "bench-join-" + tag, 2, 8, 1_000_000, 1, 20));
                }
                await("a world of 2", v -> earliest(ws, 2, 0) >= 0);
                W joiner = new W(ep, "bench-join-" + tag, 2, 8, 1_000_000, 1, 20);
                ws.add(joiner);
                await("the joiner's first step", v -> joiner.firstStep(3, 0) >= 0);
                double s = (joiner.firstStep(3, 0) - joiner.startMillis) / 1000.0;
                rows.add(row(report, "join 2->3", s, 5.0, "from the joiner's JVM start"));
            } finally {
                closeAll(ws);
            }
            // graceful leave and kill -9, 4 -> 3
            for (String kind : new String[] {"leave 4->3", "kill -9 4->3"}) {
                List<W> four = new ArrayList<>();
                try {
                    String run = "bench-" + (kind.startsWith("leave") ? "leave" : "kill") + "-" + tag;
                    for (int i = 0; i < 4; i++) {
                        four.add(new W(ep, run, 2, 8, 1_000_000, 1, 20));
                    }
                    await("a world of 4", v -> earliest(four, 4, 0) >= 0);
                    Thread.sleep(500);
                    W victim = four.get(3);
                    long t0 = System.currentTimeMillis();
                    if (kind.startsWith("leave")) {
                        new ProcessBuilder("kill", "-TERM", Long.toString(victim.p.pid())).start().waitFor();
                    } else {
                        victim.p.destroyForcibly();
                    }
                    List<W> rest = four.subList(0, 3);
                    await("a world of 3 after " + kind, v -> earliest(rest, 3, t0) >= 0);
                    double s = (earliest(rest, 3, t0) - t0) / 1000.0;
                    rows.add(row(report, kind, s, kind.startsWith("leave") ? 1.0 : 3.0,
                            kind.startsWith("leave") ? "from SIGTERM, no rollback" : "from the kill; bound 1 s + 2 s"));
                } finally {
                    closeAll(four);
                }
            }
            // join 4 -> 8
            List<W> eight = new ArrayList<>();
            try {
                for (int i = 0; i < 4; i++) {
                    eight.add(new W(ep, "bench-grow-" + tag, 2, 8, 1_000_000, 1, 20));
                }
                await("a world of 4", v -> earliest(eight, 4, 0) >= 0);
                long t0 = System.currentTimeMillis();
                for (int i = 0; i < 4; i++) {
                    eight.add(new W(ep, "bench-grow-" + tag, 2, 8, 1_000_000, 1, 20));
                }
                await("a world of 8", v -> earliest(eight, 8, t0) >= 0);
                double s = (earliest(eight, 8, t0) - t0) / 1000.0;
                rows.add(row(report, "join 4->8", s, 5.0, "from the 4 joiners' JVM starts"));
            } finally {
                closeAll(eight);
            }
            // commit every step against never
            double[] ms = new double[2];
            for (int c = 0; c < 2; c++) {
                List<W> two = new ArrayList<>();
                try {
                    String run = "bench-commit" + c + "-" + tag;
                    for (int i = 0; i < 2; i++) {
                        two.add(new W(ep, run, 2, 2, 160, c == 0 ? 1 : 1_000_000, 0));
                    }
                    W first = two.get(0);
                    await("160 steps", v -> first.lines.stream().anyMatch(l -> l.startsWith("DONE")));
                    ms[c] = first.meanStepMs(40, 160);
                } finally {
                    closeAll(two);
                }
            }
            rows.add(row(report, "commit/step", ms[0] / ms[1], 1.05, String.format("%.2f ms with, %.2f ms without "
                    + "(ratio; 2 ranks)", ms[0], ms[1])));
        }
        return rows;
    }

    private static void closeAll(List<W> ws) throws InterruptedException {
        for (W w : ws) {
            w.close();
        }
    }

    private static BenchRow row(BenchReport report, String event, double s, double goal, String detail)
            throws java.io.IOException {
        BenchRow r = new BenchRow().put("bench", "elastic").put("event", event).put("seconds", s).put("goal_s", goal)
                .put("detail", detail);
        report.add(r);
        return r;
    }
}
