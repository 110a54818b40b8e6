package dev.torus.serve;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.DistributionSummary;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.function.IntSupplier;
import org.HdrHistogram.Histogram;
import org.HdrHistogram.Recorder;

/**
 * The router's metrics, scraped in Prometheus text format from {@code GET /metrics}: requests by status
 * code, batch sizes, queue time, end-to-end latency quantiles and replica counts. Latency and queue time
 * are recorded in HdrHistograms (1 µs to 60 s, 3 significant digits); the exported quantiles cover the
 * whole run (cumulative), and {@link #latencyInterval()} hands interval snapshots to benchmarks.
 * Thread-safe. Owned by the router; nothing to close.
 */
public final class ServeMetrics {
    private static final long MAX_MICROS = 60_000_000L;

    private final String model;
    private final PrometheusMeterRegistry registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
    private final ConcurrentHashMap<Integer, Counter> byCode = new ConcurrentHashMap<>();
    private final DistributionSummary batchRows;
    private final Counter retries;
    private final Histogram latency = new Histogram(MAX_MICROS, 3);
    private final Histogram queue = new Histogram(MAX_MICROS, 3);
    private final Recorder latencyInterval = new Recorder(MAX_MICROS, 3);

    public ServeMetrics(String model, IntSupplier readyReplicas, IntSupplier startingReplicas, IntSupplier queuedRequests) {
        batchRows = DistributionSummary.builder("torus_serve_batch_rows")
                .description("rows per batch sent to a replica").tag("model", model)
                .serviceLevelObjectives(1, 2, 4, 8, 16, 32, 64).register(registry);
        retries = Counter.builder("torus_serve_retries").description("batches retried on another replica after a failure")
                .tag("model", model).register(registry);
        Gauge.builder("torus_serve_replicas", readyReplicas::getAsInt).description("replicas ready to serve")
                .tag("model", model).tag("state", "ready").register(registry);
        Gauge.builder("torus_serve_replicas", startingReplicas::getAsInt).description("replicas starting")
                .tag("model", model).tag("state", "starting").register(registry);
        Gauge.builder("torus_serve_queue_requests", queuedRequests::getAsInt).description("requests waiting for a batch")
                .tag("model", model).register(registry);
        for (double q : new double[] {0.5, 0.95, 0.99}) {
            Gauge.builder("torus_serve_latency_seconds", () -> quantile(latency, q))
                    .description("end-to-end request latency at the router (HDR histogram, whole run)")
                    .tag("model", model).tag("quantile", Double.toString(q)).register(registry);
            Gauge.builder("torus_serve_queue_seconds", () -> quantile(queue, q))
                    .description("time from arrival to dispatch in a batch (HDR histogram, whole run)")
                    .tag("model", model).tag("quantile", Double.toString(q)).register(registry);
        }
        this.model = model;
    }

    private static double quantile(Histogram h, double q) {
        synchronized (h) {
            return h.getTotalCount() == 0 ? 0 : h.getValueAtPercentile(q * 100) / 1e6;
        }
    }

    /** Counts a finished request with its HTTP status code. */
    public void request(int status) {
        byCode.computeIfAbsent(status, c -> Counter.builder("torus_serve_requests").description("inference requests")
                .tag("model", model).tag("code", Integer.toString(c)).register(registry)).increment();
    }

    public void latencyNanos(long nanos) {
        long us = Math.max(1, Math.min(MAX_MICROS, TimeUnit.NANOSECONDS.toMicros(nanos)));
        synchronized (latency) {
            latency.recordValue(us);
        }
        latencyInterval.recordValue(us);
    }

    public void queueNanos(long nanos) {
        long us = Math.max(1, Math.min(MAX_MICROS, TimeUnit.NANOSECONDS.toMicros(nanos)));
        synchronized (queue) {
            queue.recordValue(us);
        }
    }

    public void batch(int rows) {
        batchRows.record(rows);
    }

    public void retry() {
        retries.increment();
    }

    /** Latency (µs) recorded since the previous call; the caller owns the returned histogram. */
    public Histogram latencyInterval() {
        return latencyInterval.getIntervalHistogram();
    }

    /** The whole-run latency histogram (µs), copied. */
    public Histogram latency() {
        synchronized (latency) {
            return latency.copy();
        }
    }

    /** Every metric in Prometheus text exposition format 0.0.4. */
    public String scrape() {
        return registry.scrape();
    }
}
