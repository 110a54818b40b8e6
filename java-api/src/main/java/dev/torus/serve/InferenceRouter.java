package dev.torus.serve;

import io.netty.buffer.ByteBufInputStream;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.QueryStringDecoder;
import java.util.concurrent.CompletionException;

/**
 * The HTTP front of {@code torus serve}: the Open Inference Protocol (KServe v2) over REST, on Netty.
 * <pre>
 *   GET  /v2/health/live            200 while the process runs
 *   GET  /v2/health/ready           200 when at least one replica is ready, else 503
 *   GET  /v2/models/{name}          model metadata
 *   GET  /v2/models/{name}/ready    as /v2/health/ready, for the model
 *   POST /v2/models/{name}/infer    {"inputs":[{"name":"input","shape":[N,F],"datatype":"FP32","data":[...]}]}
 *   GET  /metrics                   Prometheus text format
 * </pre>
 * Errors answer {@code {"error": "..."}}: 400 for a malformed or wrong request, 404 for an unknown model or
 * path, 405 for a wrong method, 413 (from Netty) for a body over the limit, 429 with {@code Retry-After}
 * when the batcher's queue is full, 503 when no replica could run the request. A bad request never reaches
 * the batcher, so it cannot hurt others. Owns its server threads; {@link #close()} stops listening (the
 * batcher and pool belong to the caller).
 */
public final class InferenceRouter implements AutoCloseable {
    private static final String JSON = "application/json";

    private final String modelName;
    private final String platform;
    private final int classes;
    private final InferenceJson json;
    private final DynamicBatcher batcher;
    private final ReplicaSet replicas;
    private final ServeMetrics metrics;
    private final NettyHttp http;

    /**
     * @param maxBodyBytes larger request bodies get 413
     * @param maxRowsPerRequest the most rows one request may carry
     */
    public InferenceRouter(String modelName, String platform, int features, int classes, DynamicBatcher batcher,
                           ReplicaSet replicas, ServeMetrics metrics, String host, int port, int maxBodyBytes,
                           int maxRowsPerRequest) {
        if (modelName == null || !modelName.matches("[A-Za-z0-9_.-]{1,128}")) {
            throw new IllegalArgumentException("model name must be 1-128 characters of [A-Za-z0-9_.-], got '" + modelName + "'");
        }
        if (maxBodyBytes < 1024) {
            throw new IllegalArgumentException("maxBodyBytes must be >= 1024, got " + maxBodyBytes);
        }
        if (maxRowsPerRequest < 1 || (long) maxRowsPerRequest * features > (1 << 24)) {
            throw new IllegalArgumentException("maxRowsPerRequest must be >= 1 with maxRowsPerRequest x features <= "
                    + (1 << 24) + ", got " + maxRowsPerRequest + " x " + features);
        }
        this.modelName = modelName;
        this.platform = platform;
        this.classes = classes;
        this.json = new InferenceJson("input", features, maxRowsPerRequest);
        this.batcher = batcher;
        this.replicas = replicas;
        this.metrics = metrics;
        this.http = NettyHttp.start(host, port, maxBodyBytes, 2, this::handle);
    }

    public int port() {
        return http.port();
    }

    /** {@code http://host:port}. */
    public String endpoint() {
        return "http://" + ReplicaServer.hostForUrl(http.host()) + ":" + http.port();
    }

    private void handle(ChannelHandlerContext ctx, FullHttpRequest req) {
        String path = new QueryStringDecoder(req.uri()).path();
        HttpMethod m = req.method();
        String modelPrefix = "/v2/models/" + modelName;
        switch (path) {
            case "/v2/health/live" -> {
                if (get(ctx, req)) {
                    NettyHttp.respond(ctx, req, HttpResponseStatus.OK, JSON, NettyHttp.bytes("{\"live\":true}"));
                }
                return;
            }
            case "/v2/health/ready" -> {
                if (get(ctx, req)) {
                    ready(ctx, req);
                }
                return;
            }
            case "/metrics" -> {
                if (get(ctx, req)) {
                    NettyHttp.respond(ctx, req, HttpResponseStatus.OK, "text/plain; version=0.0.4; charset=utf-8",
                            NettyHttp.bytes(metrics.scrape()));
                }
                return;
            }
            default -> { }
        }
        if (path.equals(modelPrefix) || path.equals(modelPrefix + "/versions/1")) {
            if (get(ctx, req)) {
                NettyHttp.respond(ctx, req, HttpResponseStatus.OK, JSON, json.metadata(modelName, platform, classes));
            }
        } else if (path.equals(modelPrefix + "/ready") || path.equals(modelPrefix + "/versions/1/ready")) {
            if (get(ctx, req)) {
                ready(ctx, req);
            }
        } else if (path.equals(modelPrefix + "/infer") || path.equals(modelPrefix + "/versions/1/infer")) {
            if (!m.equals(HttpMethod.POST)) {
                error(ctx, req, HttpResponseStatus.METHOD_NOT_ALLOWED, "use POST for " + path);
                return;
            }
            infer(ctx, req);
        } else if (path.startsWith("/v2/models/")) {
            error(ctx, req, HttpResponseStatus.NOT_FOUND, "unknown model; this server serves \"" + modelName + "\"");
        } else {
            error(ctx, req, HttpResponseStatus.NOT_FOUND, "unknown path " + path);
        }
    }

    private boolean get(ChannelHandlerContext ctx, FullHttpRequest req) {
        if (req.method().equals(HttpMethod.GET) || req.method().equals(HttpMethod.HEAD)) {
            return true;
        }
        error(ctx, req, HttpResponseStatus.METHOD_NOT_ALLOWED, "use GET for " + req.uri());
        return false;
    }

    private void ready(ChannelHandlerContext ctx, FullHttpRequest req) {
        int n = replicas.readyCount();
        NettyHttp.respond(ctx, req, n > 0 ? HttpResponseStatus.OK : HttpResponseStatus.SERVICE_UNAVAILABLE, JSON,
                NettyHttp.bytes("{\"ready\":" + (n > 0) + ",\"replicas\":" + n + "}"));
    }

    private void infer(ChannelHandlerContext ctx, FullHttpRequest req) {
        long start = System.nanoTime();
        InferenceJson.Request r;
        try {
            r = json.parse(new ByteBufInputStream(req.content()));
        } catch (InferenceJson.BadRequestException e) {
            error(ctx, req, HttpResponseStatus.BAD_REQUEST, e.getMessage());
            return;
        }
        boolean keepAlive = HttpUtil.isKeepAlive(req);
        try {
            batcher.submit(r.data(), r.rows()).whenComplete((y, err) -> {
                int bad = err == null ? firstNonFinite(y) : -1;
                if (bad >= 0) {
                    // finite inputs can still overflow the model (values near float32's limit): say so, do not
                    // answer NaN
                    metrics.request(400);
                    NettyHttp.respond(ctx, keepAlive, HttpResponseStatus.BAD_REQUEST, JSON, InferenceJson.error(
                            "the model's output for row " + bad / classes + " is not finite: an input is out of the "
                                    + "model's range"), null);
                } else if (err == null) {
                    metrics.latencyNanos(System.nanoTime() - start);
                    metrics.request(200);
                    NettyHttp.respond(ctx, keepAlive, HttpResponseStatus.OK, JSON,
                            json.response(modelName, r.id(), r.rows(), classes, y), null);
                } else {
                    Throwable cause = err instanceof CompletionException && err.getCause() != null ? err.getCause() : err;
                    metrics.request(503);
                    NettyHttp.respond(ctx, keepAlive, HttpResponseStatus.SERVICE_UNAVAILABLE, JSON,
                            InferenceJson.error(cause.getMessage()), "1");
                }
            });
        } catch (DynamicBatcher.QueueFullException e) {
            metrics.request(429);
            NettyHttp.respond(ctx, keepAlive, HttpResponseStatus.TOO_MANY_REQUESTS, JSON,
                    InferenceJson.error("overloaded: " + e.getMessage() + "; retry later"), "1");
        } catch (DynamicBatcher.NoReplicaException e) {
            metrics.request(503);
            NettyHttp.respond(ctx, keepAlive, HttpResponseStatus.SERVICE_UNAVAILABLE, JSON,
                    InferenceJson.error(e.getMessage()), "1");
        }
    }

    private static int firstNonFinite(float[] y) {
        for (int i = 0; i < y.length; i++) {
            if (!Float.isFinite(y[i])) {
                return i;
            }
        }
        return -1;
    }

    private void error(ChannelHandlerContext ctx, FullHttpRequest req, HttpResponseStatus status, String message) {
        metrics.request(status.code());
        NettyHttp.respond(ctx, req, status, JSON, InferenceJson.error(message));
    }

    /** Stops accepting connections; requests already received are still answered until {@link #close()}. */
    public void stopAccepting() {
        http.stopAccepting();
    }

    @Override
    public void close() {
        http.close();
    }
}
