package dev.torus.serve;

import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Groups requests into batches and sends each batch to a ready replica, with Triton's two knobs: a batch
 * leaves when it holds {@code maxBatch} rows, or when its oldest request has waited {@code maxQueueDelay}
 * and a replica is free. While every replica is busy, requests keep queueing and the next batch is fuller.
 *
 * <p>The queue is bounded ({@code maxQueuedRequests}); {@link #submit} then throws {@link QueueFullException}
 * (the router answers 429 with Retry-After). A batch whose replica fails (connection refused or reset,
 * timeout, non-200) goes back to the front of the queue and is retried on another replica, up to
 * {@code maxAttempts}; inference is idempotent, so nothing is lost while one replica lives. A request that
 * finds no ready replica within {@code requestTimeout} fails with {@link NoReplicaException} (503).
 *
 * <p>Owns its dispatcher thread and HTTP client; {@link #close()} fails what is still queued.
 */
public final class DynamicBatcher implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(DynamicBatcher.class);

    /** Batching knobs (see the class comment and docs/SERVING.md). */
    public record Options(int maxBatch, long maxQueueDelayNanos, int maxQueuedRequests, int maxAttempts,
                          long requestTimeoutNanos, long batchTimeoutNanos) {
        public Options {
            if (maxBatch < 1 || maxBatch > 4096) {
                throw new IllegalArgumentException("maxBatch must be in [1, 4096], got " + maxBatch);
            }
            if (maxQueueDelayNanos < 0) {
                throw new IllegalArgumentException("maxQueueDelay must be >= 0, got " + maxQueueDelayNanos + " ns");
            }
            if (maxQueuedRequests < 1) {
                throw new IllegalArgumentException("maxQueuedRequests must be >= 1, got " + maxQueuedRequests);
            }
            if (maxAttempts < 1) {
                throw new IllegalArgumentException("maxAttempts must be >= 1, got " + maxAttempts);
            }
            if (requestTimeoutNanos <= 0 || batchTimeoutNanos <= 0) {
                throw new IllegalArgumentException("timeouts must be > 0");
            }
        }

        /**
         * Max batch 8, max queue delay 5 ms, 512 queued requests, 8 attempts (a request fails only after 8 replicas
         * failed it in turn, or when no replica took it within 30 s), 10 s per batch.
         */
        public static Options defaults() {
            return new Options(8, 5_000_000L, 512, 8, 30_000_000_000L, 10_000_000_000L);
        }

        public Options withMaxBatch(int b) {
            return new Options(b, maxQueueDelayNanos, maxQueuedRequests, maxAttempts, requestTimeoutNanos, batchTimeoutNanos);
        }

        public Options withMaxQueueDelayNanos(long d) {
            return new Options(maxBatch, d, maxQueuedRequests, maxAttempts, requestTimeoutNanos, batchTimeoutNanos);
        }

        public Options withMaxQueuedRequests(int q) {
            return new Options(maxBatch, maxQueueDelayNanos, q, maxAttempts, requestTimeoutNanos, batchTimeoutNanos);
        }
    }

    /** The bounded queue is full. */
    public static final class QueueFullException extends RuntimeException {
        QueueFullException(String m) {
            super(m);
        }
    }

    /** No ready replica took the request in time, or every attempt failed. */
    public static final class NoReplicaException extends RuntimeException {
        NoReplicaException(String m) {
            super(m);
        }
    }

    private static final class Pending {
        final float[] x;
        final int rows;
        final long arrived;
        final CompletableFuture<float[]> result = new CompletableFuture<>();
        int attempts;

        Pending(float[] x, int rows, long arrived) {
            this.x = x;
            this.rows = rows;
            this.arrived = arrived;
        }
    }

    private final Options options;
    private final ReplicaSet replicas;
    private final ServeMetrics metrics;
    private final int inputs;
    private final int outputs;
    private final HttpClient http;
    private final Deque<Pending> queue = new ArrayDeque<>();
    private final Thread dispatcher;
    private volatile boolean closed;

    public DynamicBatcher(Options options, ReplicaSet replicas, int inputs, int outputs, ServeMetrics metrics) {
        if (options == null || replicas == null || metrics == null) {
            throw new IllegalArgumentException("options, replicas and metrics must not be null");
        }
        if (inputs < 1 || outputs < 1) {
            throw new IllegalArgumentException("inputs and outputs must be >= 1, got " + inputs + " and " + outputs);
        }
        this.options = options;
        this.replicas = replicas;
        this.metrics = metrics;
        this.inputs = inputs;
        this.outputs = outputs;
        this.http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
                .connectTimeout(Duration.ofSeconds(2)).build();
        this.dispatcher = new Thread(this::dispatchLoop, "torus-batcher");
        dispatcher.setDaemon(true);
        dispatcher.start();
    }

    public Options options() {
        return options;
    }

    /**
     * Queues {@code rows} rows ({@code x.length == rows * inputs}); the future completes with
     * {@code rows * outputs} values, or with {@link NoReplicaException}.
     *
     * @throws QueueFullException when {@code maxQueuedRequests} are already waiting
     */
    public CompletableFuture<float[]> submit(float[] x, int rows) {
        if (x == null || rows < 1 || x.length != (long) rows * inputs) {
            throw new IllegalArgumentException("x must hold rows x " + inputs + " values with rows >= 1, got "
                    + (x == null ? "null" : x.length + " values for " + rows + " rows"));
        }
        Pending p = new Pending(x, rows, System.nanoTime());
        synchronized (replicas.monitor()) {
            if (closed) {
                throw new NoReplicaException("the router is shutting down");
            }
            if (queue.size() >= options.maxQueuedRequests()) {
                throw new QueueFullException("the queue holds " + queue.size() + " requests, its limit");
            }
            queue.addLast(p);
            replicas.monitor().notifyAll();
        }
        outstanding(+1);
        p.result.whenComplete((y, e) -> outstanding(-1));
        return p.result;
    }

    private final Object areaLock = new Object();
    private int outstanding;
    private long lastChange = System.nanoTime();
    private long lastTake = lastChange;
    private double area;

    private void outstanding(int delta) {
        synchronized (areaLock) {
            long now = System.nanoTime();
            area += (double) outstanding * (now - lastChange);
            lastChange = now;
            outstanding += delta;
        }
    }

    /**
     * The time-averaged number of requests in flight (queued or on a replica) since the previous call: the
     * autoscaler's metric. An instantaneous count sampled on a fixed period would alias with periodic traffic
     * (a request every 200 ms that lives 16 ms is never seen by a sampler whose phase misses it).
     */
    public double takeAverageInFlight() {
        synchronized (areaLock) {
            long now = System.nanoTime();
            area += (double) outstanding * (now - lastChange);
            lastChange = now;
            double mean = now > lastTake ? area / (now - lastTake) : outstanding;
            area = 0;
            lastTake = now;
            return mean;
        }
    }

    /** Requests waiting for a batch. */
    public int queued() {
        synchronized (replicas.monitor()) {
            return queue.size();
        }
    }

    /** Requests queued plus requests in flight on replicas: the autoscaler's metric. */
    public int inFlight() {
        synchronized (replicas.monitor()) {
            return queue.size() + replicas.inFlightRequests();
        }
    }

    private void dispatchLoop() {
        Object lock = replicas.monitor();
        while (!closed) {
            List<Pending> batch;
            ReplicaSet.Replica target;
            synchronized (lock) {
                try {
                    expire();
                    if (queue.isEmpty()) {
                        lock.wait(100);
                        continue;
                    }
                    int rows = 0;
                    int n = 0;
                    for (Pending p : queue) {
                        if (n > 0 && rows + p.rows > options.maxBatch()) {
                            break;
                        }
                        rows += p.rows;
                        n++;
                    }
                    long waited = System.nanoTime() - queue.peekFirst().arrived;
                    if (rows < options.maxBatch() && n == queue.size() && waited < options.maxQueueDelayNanos()) {
                        long left = options.maxQueueDelayNanos() - waited;
                        TimeUnit.NANOSECONDS.timedWait(lock, Math.max(1, left));
                        continue;
                    }
                    target = replicas.acquire(n);
                    if (target == null) {
                        lock.wait(50);
                        continue;
                    }
                    batch = new ArrayList<>(n);
                    for (int i = 0; i < n; i++) {
                        batch.add(queue.removeFirst());
                    }
                } catch (InterruptedException e) {
                    break;
                }
            }
            try {
                send(target, batch);
            } catch (RuntimeException e) {
                // a batch that could not even be sent is a failure of that replica: retried elsewhere
                LOG.warn("cannot send a batch to replica {}: {}", target.id(), e.toString());
                replicas.release(target, batch.size(), false);
                retry(batch, target.id() + ": " + e);
            }
        }
        failAll("the router is shutting down");
    }

    private void expire() {
        long now = System.nanoTime();
        while (!queue.isEmpty() && now - queue.peekFirst().arrived > options.requestTimeoutNanos()) {
            Pending p = queue.removeFirst();
            p.result.completeExceptionally(new NoReplicaException("no ready replica took the request within "
                    + TimeUnit.NANOSECONDS.toMillis(options.requestTimeoutNanos()) + " ms"));
        }
    }

    private void send(ReplicaSet.Replica target, List<Pending> batch) {
        int rows = 0;
        for (Pending p : batch) {
            rows += p.rows;
        }
        ByteBuffer body = ByteBuffer.allocate(rows * inputs * 4).order(ByteOrder.LITTLE_ENDIAN);
        long now = System.nanoTime();
        for (Pending p : batch) {
            body.asFloatBuffer().put(p.x);
            body.position(body.position() + p.x.length * 4);
            if (p.attempts == 0) {
                metrics.queueNanos(now - p.arrived);
            }
            p.attempts++;
        }
        metrics.batch(rows);
        HttpRequest req = HttpRequest.newBuilder(target.batchUri())
                .timeout(Duration.ofNanos(options.batchTimeoutNanos()))
                .header(ReplicaServer.ROWS_HEADER, Integer.toString(rows))
                .header("Content-Type", "application/octet-stream")
                .POST(HttpRequest.BodyPublishers.ofByteArray(body.array())).build();
        int total = rows;
        http.sendAsync(req, info -> new BoundedBody(total * outputs * 4L)).whenComplete((res, err) -> {
            if (err == null && res.statusCode() == 200 && res.body().length == total * outputs * 4) {
                ByteBuffer out = ByteBuffer.wrap(res.body()).order(ByteOrder.LITTLE_ENDIAN);
                for (Pending p : batch) {
                    float[] y = new float[p.rows * outputs];
                    out.asFloatBuffer().get(y);
                    out.position(out.position() + y.length * 4);
                    p.result.complete(y);
                }
                // the answers are out before any bookkeeping that could throw
                replicas.release(target, batch.size(), true);
            } else {
                String why = err != null ? err.toString()
                        : "HTTP " + res.statusCode() + " with " + res.body().length + " bytes";
                LOG.warn("batch of {} rows failed on replica {}: {}; retrying elsewhere", total, target.id(), why);
                replicas.release(target, batch.size(), false);
                retry(batch, target.id() + ": " + why);
            }
        });
    }

    /**
     * Collects a replica's answer, refusing (and cancelling the transfer) as soon as it holds more than the
     * batch's answer can: a broken or hostile endpoint cannot make the router buffer an unbounded body.
     */
    private static final class BoundedBody implements HttpResponse.BodySubscriber<byte[]> {
        private final long limit;
        private final java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        private final CompletableFuture<byte[]> result = new CompletableFuture<>();
        private java.util.concurrent.Flow.Subscription subscription;

        BoundedBody(long limit) {
            this.limit = limit;
        }

        @Override
        public java.util.concurrent.CompletionStage<byte[]> getBody() {
            return result;
        }

        @Override
        public void onSubscribe(java.util.concurrent.Flow.Subscription s) {
            subscription = s;
            s.request(Long.MAX_VALUE);
        }

        @Override
        public void onNext(List<ByteBuffer> items) {
            for (ByteBuffer b : items) {
                if (out.size() + (long) b.remaining() > limit) {
                    subscription.cancel();
                    result.completeExceptionally(new java.io.IOException("replica answered more than the "
                            + limit + " bytes this batch needs"));
                    return;
                }
                byte[] chunk = new byte[b.remaining()];
                b.get(chunk);
                out.write(chunk, 0, chunk.length);
            }
        }

        @Override
        public void onError(Throwable t) {
            result.completeExceptionally(t);
        }

        @Override
        public void onComplete() {
            result.complete(out.toByteArray());
        }
    }

    private void retry(List<Pending> batch, String why) {
        boolean counted = false;
        synchronized (replicas.monitor()) {
            for (int i = batch.size() - 1; i >= 0; i--) {
                Pending p = batch.get(i);
                if (closed || p.attempts >= options.maxAttempts()) {
                    p.result.completeExceptionally(new NoReplicaException(
                            "inference failed on " + p.attempts + " replicas; last: " + why));
                } else {
                    if (!counted) {
                        metrics.retry();     // once per batch, as documented
                        counted = true;
                    }
                    queue.addFirst(p);
                }
            }
            replicas.monitor().notifyAll();
        }
    }

    private void failAll(String why) {
        synchronized (replicas.monitor()) {
            while (!queue.isEmpty()) {
                queue.removeFirst().result.completeExceptionally(new NoReplicaException(why));
            }
        }
    }

    @Override
    public void close() {
        closed = true;
        synchronized (replicas.monitor()) {
            replicas.monitor().notifyAll();
        }
        try {
            dispatcher.join(2000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        failAll("the router is shutting down");
    }
}
