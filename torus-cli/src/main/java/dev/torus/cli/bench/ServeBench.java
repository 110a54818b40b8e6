package dev.torus.cli.bench;

import dev.torus.Device;
import dev.torus.cli.Json;
import dev.torus.cli.demo.DemoData;
import dev.torus.cli.serve.ServeStack;
import dev.torus.memory.Allocator;
import dev.torus.nn.Mlp;
import dev.torus.serve.Autoscaler;
import dev.torus.serve.DynamicBatcher;
import dev.torus.serve.MlpModelFile;
import dev.torus.serve.ReplicaPool;
import java.io.IOException;
import java.io.PrintStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.HdrHistogram.Histogram;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.style.markers.SeriesMarkers;

/**
 * {@code torus-bench serve}: the serving stack under a real HTTP load on loopback. Two experiments:
 * <ol>
 *   <li><b>Batching</b>: one replica, closed loop with {@code --concurrency} clients, max batch 1 and then
 *       {@code --max-batch}; throughput and p95 side by side (replica time {@code --batch-emulate}, a cost per
 *       batch as on an accelerator).</li>
 *   <li><b>Autoscaling</b>: an open-loop step load ({@code --low} -> {@code --high} -> {@code --low} requests/s)
 *       against a pool of 1..{@code --max} replicas (replica time {@code --emulate}, a cost per row as on a
 *       CPU): the decision time after the step, each new replica's time to ready and to first batch, p99 in the
 *       transition and after it, non-2xx answers, the replica count over time; optional constant-load phase.</li>
 * </ol>
 * Writes {@code serve.png} (rate, replicas and p99 over time) and, with {@code --json}, one JSON object.
 */
public final class ServeBench {
    /** Options of the run. */
    public record Options(Path out, Path json, String emulate, String batchEmulate, double low, double high,
                          double lowSeconds, double highSeconds, double downSeconds, double constantSeconds,
                          double constantRate, int maxReplicas, double target, int maxBatch, int concurrency,
                          double batchingSeconds, boolean real, boolean poisson) {
    }

    private final Options o;
    private final PrintStream out;

    public ServeBench(Options o, PrintStream out) {
        this.o = o;
        this.out = out;
    }

    public int run() throws Exception {
        Files.createDirectories(o.out());
        Path fp32 = o.out().resolve("bench-model.safetensors");
        Path int8 = o.out().resolve("bench-model.int8.safetensors");
        try (Allocator a = Allocator.root("serve-bench", Long.MAX_VALUE);
             Mlp mlp = new Mlp(DemoData.FEATURES, 128, 6, DemoData.CLASSES, 0f, Device.cpu(), a, 7)) {
            MlpModelFile.save(mlp, fp32, Map.of());
        }
        MlpModelFile.quantize(fp32, int8);
        List<byte[]> bodies = bodies(256, 11);
        Map<String, Object> result = new LinkedHashMap<>();
        result.put("machine", Runtime.getRuntime().availableProcessors() + " cores");
        if (o.batchingSeconds() > 0) {
            result.put("batching", batching(int8, bodies));
        }
        result.put("autoscaling", autoscaling(int8, bodies));
        if (o.constantSeconds() > 0) {
            result.put("constant", constant(int8, bodies));
        }
        if (o.json() != null) {
            Files.writeString(o.json(), Json.write(result) + "\n");
        }
        return 0;
    }

    static List<byte[]> bodies(int n, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        List<byte[]> list = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            StringBuilder sb = new StringBuilder("{\"inputs\":[{\"name\":\"input\",\"shape\":[1,")
                    .append(DemoData.FEATURES).append("],\"datatype\":\"FP32\",\"data\":[");
            for (int f = 0; f < DemoData.FEATURES; f++) {
                sb.append(f == 0 ? "" : ",").append((float) r.nextGaussian());
            }
            list.add(sb.append("]}]}").toString().getBytes(StandardCharsets.UTF_8));
        }
        return list;
    }

    private ServeStack stack(Path model, int min, int max, int maxBatch, String emulate, String logName)
            throws IOException {
        return ServeStack.start(new ServeStack.Config(model, "bench-model", DemoData.FEATURES, DemoData.CLASSES,
                "127.0.0.1", 0, null, 0,
                DynamicBatcher.Options.defaults().withMaxBatch(maxBatch).withMaxQueueDelayNanos(2_000_000L)
                        .withMaxQueuedRequests(4096),
                Autoscaler.Options.defaults(min, max).withTarget(o.target()),
                o.real() ? null : emulate, 1 << 20, 64, o.out().resolve("logs-" + logName), "256m", true));
    }

    private static void awaitReady(ServeStack s, int n, long timeoutMs) throws InterruptedException {
        long until = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
        while (s.replicas().readyCount() < n) {
            if (System.nanoTime() > until) {
                throw new IllegalStateException("only " + s.replicas().readyCount() + " of " + n
                        + " replicas became ready within " + timeoutMs + " ms; see the replica logs in "
                        + s.config().logDir());
            }
            Thread.sleep(20);
        }
    }

    private static void warm(URI uri, List<byte[]> bodies) throws Exception {
        HttpClient c = HttpClient.newHttpClient();
        for (int i = 0; i < 20; i++) {
            HttpResponse<String> r = c.send(HttpRequest.newBuilder(uri).header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofByteArray(bodies.get(i))).build(), HttpResponse.BodyHandlers.ofString());
            if (r.statusCode() != 200) {
                throw new IllegalStateException("warm-up request answered " + r.statusCode() + ": " + r.body());
            }
        }
    }

    private Map<String, Object> batching(Path model, List<byte[]> bodies) throws Exception {
        out.printf("%n# Batching: 1 replica, %d closed-loop clients, %.0f s each, replica time %s per batch%n",
                o.concurrency(), o.batchingSeconds(), o.real() ? "real int8 compute" : o.batchEmulate() + " ms");
        Map<String, Object> r = new LinkedHashMap<>();
        double[] tput = new double[2];
        double[] p95 = new double[2];
        int[] batches = {1, o.maxBatch()};
        for (int k = 0; k < 2; k++) {
            try (ServeStack s = stack(model, 1, 1, batches[k], o.batchEmulate(), "batch" + batches[k])) {
                awaitReady(s, 1, 30_000);
                URI uri = URI.create(s.router().endpoint() + "/v2/models/bench-model/infer");
                warm(uri, bodies);
                LoadGenerator g = new LoadGenerator(uri, bodies, 1024);
                g.latency.reset();
                long t0 = System.nanoTime();
                g.closedLoop(o.concurrency(), o.batchingSeconds());
                double secs = (System.nanoTime() - t0) / 1e9;
                Histogram h = g.latency.getIntervalHistogram();
                tput[k] = g.ok.get() / secs;
                p95[k] = h.getValueAtPercentile(95) / 1000.0;
                out.printf("  max batch %2d: %7.1f requests/s, p50 %6.1f ms, p95 %6.1f ms, p99 %6.1f ms, non-2xx %d%n",
                        batches[k], tput[k], h.getValueAtPercentile(50) / 1000.0, p95[k],
                        h.getValueAtPercentile(99) / 1000.0, g.non2xx.get() + g.errors.get());
                r.put("max_batch_" + batches[k], Map.of("requests_per_s", tput[k], "p95_ms", p95[k],
                        "p50_ms", h.getValueAtPercentile(50) / 1000.0, "non2xx", g.non2xx.get() + g.errors.get()));
            }
        }
        double ratio = tput[1] / tput[0];
        double latRatio = p95[1] / p95[0];
        out.printf("  throughput batch %d / batch 1: %.2fx (goal >= 3x); p95 ratio %.2f (goal <= 1.2)%n",
                o.maxBatch(), ratio, latRatio);
        r.put("throughput_ratio", ratio);
        r.put("p95_ratio", latRatio);
        return r;
    }

    private Map<String, Object> autoscaling(Path model, List<byte[]> bodies) throws Exception {
        out.printf("%n# Autoscaling: %s requests/s for %.0f s, %s for %.0f s, %s for %.0f s (%s arrivals); replicas 1..%d, "
                        + "target %.2f in flight each, replica time %s ms%n", fmt(o.low()), o.lowSeconds(), fmt(o.high()),
                o.highSeconds(), fmt(o.low()), o.downSeconds(), o.poisson() ? "Poisson" : "evenly spaced",
                o.maxReplicas(), o.target(),
                o.real() ? "real" : o.emulate());
        try (ServeStack s = stack(model, 1, o.maxReplicas(), o.maxBatch(), o.emulate(), "scale")) {
            awaitReady(s, 1, 30_000);
            URI uri = URI.create(s.router().endpoint() + "/v2/models/bench-model/infer");
            warm(uri, bodies);
            LoadGenerator g = new LoadGenerator(uri, bodies, 4096).poisson(o.poisson());
            g.latency.reset();
            List<double[]> timeline = new ArrayList<>();
            long t0 = System.nanoTime();
            long stepAt = t0 + (long) (o.lowSeconds() * 1e9);
            long downAt = stepAt + (long) (o.highSeconds() * 1e9);
            Histogram transition = new Histogram(60_000_000L, 3);
            Histogram settled = new Histogram(60_000_000L, 3);
            Histogram all = new Histogram(60_000_000L, 3);
            long[] lastOk = {0};
            g.openLoop(List.of(new LoadGenerator.Phase(o.low(), o.lowSeconds()),
                    new LoadGenerator.Phase(o.high(), o.highSeconds()),
                    new LoadGenerator.Phase(o.low(), o.downSeconds())), 250_000_000L, rate -> {
                        long now = System.nanoTime();
                        Histogram h = g.latency.getIntervalHistogram();
                        all.add(h);
                        if (now > stepAt && now <= stepAt + 10_000_000_000L) {
                            transition.add(h);
                        } else if (now > stepAt + 10_000_000_000L && now <= downAt) {
                            settled.add(h);
                        }
                        long okNow = g.ok.get();
                        timeline.add(new double[] {(now - t0) / 1e9, rate, s.replicas().readyCount(),
                                s.pool().starting(), h.getTotalCount() == 0 ? Double.NaN
                                : h.getValueAtPercentile(99) / 1000.0, (okNow - lastOk[0]) * 4.0});
                        lastOk[0] = okNow;
                    });
            // let the scale-down finish being observed
            long until = System.nanoTime() + 2_000_000_000L;
            while (System.nanoTime() < until) {
                Thread.sleep(250);
                timeline.add(new double[] {(System.nanoTime() - t0) / 1e9, 0, s.replicas().readyCount(),
                        s.pool().starting(), Double.NaN, 0});
            }
            List<ReplicaPool.Event> events = s.pool().events();
            Map<String, Object> r = report(events, t0, stepAt, downAt, g, transition, settled, all);
            plot(o.out().resolve("serve.png"), timeline, stepAt - t0);
            r.put("timeline", timeline.stream().map(t -> Map.of("t_s", t[0], "rate", t[1], "ready", t[2],
                    "starting", t[3], "p99_ms", t[4], "served_per_s", t[5])).toList());
            r.put("decisions", s.pool().decisions().stream().map(Object::toString).toList());
            out.println("  decisions:");
            for (var d : s.pool().decisions()) {
                out.println("    " + d);
            }
            out.println("  wrote " + o.out().resolve("serve.png"));
            return r;
        }
    }

    private Map<String, Object> report(List<ReplicaPool.Event> events, long t0, long stepAt, long downAt,
                                       LoadGenerator g, Histogram transition, Histogram settled, Histogram all) {
        Map<String, Object> r = new LinkedHashMap<>();
        double decision = Double.NaN;
        List<Double> readyAfterStep = new ArrayList<>();
        List<Double> firstBatchAfterStep = new ArrayList<>();
        List<Double> launchToReady = new ArrayList<>();
        Map<String, Long> launchedAt = new LinkedHashMap<>();
        double fourServing = Double.NaN;
        int changes = 0;
        for (ReplicaPool.Event e : events) {
            double sinceStep = (e.atNanos() - stepAt) / 1e9;
            switch (e.kind()) {
                case "decision" -> {
                    changes++;
                    if (e.atNanos() > stepAt && Double.isNaN(decision)) {
                        decision = sinceStep;
                    }
                }
                case "launch" -> launchedAt.put(e.replicaId(), e.atNanos());
                case "ready" -> {
                    Long l = launchedAt.get(e.replicaId());
                    if (l != null && l > stepAt && e.atNanos() < downAt) {
                        launchToReady.add((e.atNanos() - l) / 1e9);
                        readyAfterStep.add(sinceStep);
                    }
                }
                case "first-batch" -> {
                    Long l = launchedAt.get(e.replicaId());
                    if (l != null && l > stepAt && e.atNanos() < downAt) {
                        firstBatchAfterStep.add(sinceStep);
                        if (firstBatchAfterStep.size() == o.maxReplicas() - 1 && Double.isNaN(fourServing)) {
                            fourServing = sinceStep;
                        }
                    }
                }
                default -> { }
            }
        }
        long non2xx = g.non2xx.get() + g.errors.get();
        out.printf("  requests: %d sent, %d ok, %d non-2xx or failed (goal 0), %d not sent (generator bound)%n",
                g.sent.get(), g.ok.get(), non2xx, g.notSent.get());
        out.printf("  scale-up decision %.2f s after the step (goal <= 1 s)%n", decision);
        out.printf("  new replicas: launch to ready %s s (goal <= 2 s); ready at %s s after the step; first batch at %s s%n",
                list(launchToReady), list(readyAfterStep), list(firstBatchAfterStep));
        out.printf("  %d replicas serving %.2f s after the step (goal <= 4 s)%n", o.maxReplicas(), fourServing);
        out.printf("  p99 in the 10 s after the step %.1f ms (goal <= 250), after that %.1f ms (goal <= 100); "
                        + "whole run p50 %.1f, p99 %.1f ms%n", transition.getValueAtPercentile(99) / 1000.0,
                settled.getValueAtPercentile(99) / 1000.0, all.getValueAtPercentile(50) / 1000.0,
                all.getValueAtPercentile(99) / 1000.0);
        out.printf("  replica-count changes: %d%n", changes);
        r.put("sent", g.sent.get());
        r.put("ok", g.ok.get());
        r.put("non2xx", non2xx);
        r.put("not_sent", g.notSent.get());
        r.put("decision_after_step_s", decision);
        r.put("launch_to_ready_s", launchToReady);
        r.put("ready_after_step_s", readyAfterStep);
        r.put("first_batch_after_step_s", firstBatchAfterStep);
        r.put("all_serving_after_step_s", fourServing);
        r.put("p99_transition_ms", transition.getValueAtPercentile(99) / 1000.0);
        r.put("p99_settled_ms", settled.getValueAtPercentile(99) / 1000.0);
        r.put("p50_ms", all.getValueAtPercentile(50) / 1000.0);
        r.put("p95_ms", all.getValueAtPercentile(95) / 1000.0);
        r.put("p99_ms", all.getValueAtPercentile(99) / 1000.0);
        r.put("replica_changes", changes);
        return r;
    }

    private Map<String, Object> constant(Path model, List<byte[]> bodies) throws Exception {
        out.printf("%n# Constant load: %s requests/s for %.0f s, replicas 1..%d%n", fmt(o.constantRate()),
                o.constantSeconds(), o.maxReplicas());
        try (ServeStack s = stack(model, 1, o.maxReplicas(), o.maxBatch(), o.emulate(), "constant")) {
            awaitReady(s, 1, 30_000);
            URI uri = URI.create(s.router().endpoint() + "/v2/models/bench-model/infer");
            warm(uri, bodies);
            LoadGenerator g = new LoadGenerator(uri, bodies, 4096).poisson(o.poisson());
            g.latency.reset();
            g.openLoop(List.of(new LoadGenerator.Phase(o.constantRate(), o.constantSeconds())), 1_000_000_000L, r -> { });
            int changes = s.pool().decisions().size();
            Histogram h = g.latency.getIntervalHistogram();
            long non2xx = g.non2xx.get() + g.errors.get();
            out.printf("  replica-count changes: %d (goal <= 1), final replicas %d, non-2xx %d, p99 %.1f ms%n", changes,
                    s.replicas().readyCount(), non2xx, h.getValueAtPercentile(99) / 1000.0);
            for (var d : s.pool().decisions()) {
                out.println("    " + d);
            }
            return Map.of("changes", changes, "non2xx", non2xx, "p99_ms", h.getValueAtPercentile(99) / 1000.0,
                    "replicas", s.replicas().readyCount());
        }
    }

    private static void plot(Path png, List<double[]> timeline, long stepNanos) throws IOException {
        System.setProperty("java.awt.headless", "true");
        int n = timeline.size();
        double[] t = new double[n];
        double[] rate = new double[n];
        double[] served = new double[n];
        double[] ready = new double[n];
        double[] p99 = new double[n];
        for (int i = 0; i < n; i++) {
            double[] row = timeline.get(i);
            t[i] = row[0];
            rate[i] = row[1];
            ready[i] = row[2];
            p99[i] = Double.isNaN(row[4]) ? 0 : row[4];
            served[i] = row[5];
        }
        XYChart c = new XYChartBuilder().width(1000).height(540)
                .title("torus serve under a step load (step at " + String.format("%.1f", stepNanos / 1e9) + " s)")
                .xAxisTitle("time (s)").yAxisTitle("requests/s, p99 (ms)").build();
        c.getStyler().setLegendPosition(org.knowm.xchart.style.Styler.LegendPosition.InsideNW);
        c.addSeries("offered rate (req/s)", t, rate).setMarker(SeriesMarkers.NONE);
        c.addSeries("served (req/s)", t, served).setMarker(SeriesMarkers.NONE);
        c.addSeries("p99 latency (ms, per 250 ms)", t, p99).setMarker(SeriesMarkers.NONE);
        var rs = c.addSeries("ready replicas", t, ready);
        rs.setMarker(SeriesMarkers.NONE);
        rs.setYAxisGroup(1);
        c.setYAxisGroupTitle(1, "replicas");
        c.getStyler().setYAxisGroupPosition(1, org.knowm.xchart.style.Styler.YAxisPosition.Right);
        String file = png.toString();
        BitmapEncoder.saveBitmap(c, file.substring(0, file.length() - 4), BitmapEncoder.BitmapFormat.PNG);
    }

    private static String list(List<Double> v) {
        StringBuilder sb = new StringBuilder("[");
        for (int i = 0; i < v.size(); i++) {
            sb.append(i == 0 ? "" : ", ").append(String.format("%.2f", v.get(i)));
        }
        return sb.append("]").toString();
    }

    private static String fmt(double v) {
        return v == Math.rint(v) ? Long.toString((long) v) : Double.toString(v);
    }
}
