package dev.torus.cli.bench;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import org.HdrHistogram.Recorder;

/**
 * A bounded HTTP load generator for {@code torus-bench serve}: open loop (requests leave on a schedule of
 * rates, evenly spaced or as a seeded Poisson process, whatever the answers do, so a slow server cannot slow the offered load) or closed loop (N clients,
 * each sending its next request when the last is answered). At most {@code maxOutstanding} requests are in
 * flight; beyond that the open loop counts a request as <i>not sent</i> rather than queueing without bound.
 */
final class LoadGenerator {
    /** One phase of an open-loop schedule. */
    record Phase(double rate, double seconds) {
    }

    private final HttpClient client = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(5)).build();
    private final URI uri;
    private final List<byte[]> bodies;
    final Recorder latency = new Recorder(60_000_000L, 3);
    final AtomicLong ok = new AtomicLong();
    final AtomicLong non2xx = new AtomicLong();
    final AtomicLong errors = new AtomicLong();
    final AtomicLong notSent = new AtomicLong();
    final AtomicLong sent = new AtomicLong();
    final ConcurrentHashMap<Integer, AtomicLong> byStatus = new ConcurrentHashMap<>();
    private final Semaphore outstanding;
    private final java.util.SplittableRandom arrivals = new java.util.SplittableRandom(2026);
    private final int maxOutstanding;

    private boolean poisson;

    /** Poisson arrivals instead of evenly spaced ones in {@link #openLoop}. */
    LoadGenerator poisson(boolean on) {
        poisson = on;
        return this;
    }

    LoadGenerator(URI uri, List<byte[]> bodies, int maxOutstanding) {
        this.uri = uri;
        this.bodies = bodies;
        this.outstanding = new Semaphore(maxOutstanding);
        this.maxOutstanding = maxOutstanding;
    }

    private CompletableFuture<Void> send(long i) {
        HttpRequest req = HttpRequest.newBuilder(uri).timeout(Duration.ofSeconds(30))
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofByteArray(bodies.get((int) (i % bodies.size())))).build();
        long t0 = System.nanoTime();
        sent.incrementAndGet();
        return client.sendAsync(req, HttpResponse.BodyHandlers.discarding()).handle((res, err) -> {
            long us = Math.max(1, Math.min(60_000_000L, (System.nanoTime() - t0) / 1000));
            if (err != null) {
                errors.incrementAndGet();
            } else {
                byStatus.computeIfAbsent(res.statusCode(), k -> new AtomicLong()).incrementAndGet();
                if (res.statusCode() / 100 == 2) {
                    ok.incrementAndGet();
                    latency.recordValue(us);
                } else {
                    non2xx.incrementAndGet();
                }
            }
            outstanding.release();
            return null;
        });
    }

    /** Runs the phases one after another; {@code onTick} runs every {@code tickNanos} with the current rate. */
    void openLoop(List<Phase> phases, long tickNanos, java.util.function.DoubleConsumer onTick) {
        long start = System.nanoTime();
        long nextTick = start;
        long i = 0;
        long phaseStart = start;
        for (Phase p : phases) {
            long end = phaseStart + (long) (p.seconds() * 1e9);
            double mean = 1e9 / p.rate();
            long next = phaseStart;
            while (next < end) {
                long now = System.nanoTime();
                while (now >= nextTick) {
                    onTick.accept(p.rate());
                    nextTick += tickNanos;
                }
                if (now < next) {
                    LockSupport.parkNanos(Math.min(next - now, Math.max(1, nextTick - now)));
                    continue;
                }
                if (outstanding.tryAcquire()) {
                    send(i++);
                } else {
                    notSent.incrementAndGet();
                }
                // evenly spaced (a paced open loop, as wrk2 does), or Poisson (seeded exponential gaps, as many
                // independent clients produce)
                next += poisson ? (long) (-mean * Math.log(1 - arrivals.nextDouble())) : (long) mean;
            }
            phaseStart = end;
        }
        drain();
    }

    /** {@code clients} closed-loop clients for {@code seconds}. */
    void closedLoop(int clients, double seconds) {
        long end = System.nanoTime() + (long) (seconds * 1e9);
        AtomicLong counter = new AtomicLong();
        Runnable[] loop = new Runnable[1];
        loop[0] = () -> {
            if (System.nanoTime() >= end) {
                return;
            }
            outstanding.acquireUninterruptibly();
            send(counter.getAndIncrement()).thenRun(loop[0]);
        };
        for (int c = 0; c < clients; c++) {
            loop[0].run();
        }
        while (System.nanoTime() < end) {
            LockSupport.parkNanos(10_000_000L);
        }
        drain();
    }

    private void drain() {
        long until = System.nanoTime() + 35_000_000_000L;
        while (System.nanoTime() < until && outstanding.availablePermits() < maxPermits()) {
            LockSupport.parkNanos(5_000_000L);
        }
    }

    private int maxPermits() {
        return maxOutstanding;
    }
}
