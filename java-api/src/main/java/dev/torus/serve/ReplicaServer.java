package dev.torus.serve;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpUtil;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A replica's endpoint: runs batches of one model for a router, one batch at a time on one compute thread.
 *
 * <p>Wire protocol (binary, little-endian, HTTP/1.1 keep-alive; no Java serialization):
 * {@code POST /v1/batch} with header {@value #ROWS_HEADER} and a body of {@code rows x inputs} float32 values
 * answers 200 with {@code rows x outputs} float32 values; 400 for a bad header or body length; 503 while
 * draining or when its small queue is full. {@code GET /v1/ready} answers 200 once constructed (the model
 * is loaded and warmed up before the server starts).
 *
 * <p>Owns the model and closes it in {@link #close()}.
 */
public final class ReplicaServer implements AutoCloseable {
    public static final String ROWS_HEADER = "x-torus-rows";
    public static final String BATCH_PATH = "/v1/batch";
    public static final String READY_PATH = "/v1/ready";
    private static final Logger LOG = LoggerFactory.getLogger(ReplicaServer.class);

    private final BatchModel model;
    private final int maxRows;
    private final ExecutorService compute;
    private final NettyHttp http;
    private final AtomicBoolean draining = new AtomicBoolean();
    private final AtomicInteger inFlight = new AtomicInteger();
    private final AtomicLong batches = new AtomicLong();

    /**
     * Warms the model up with one batch of zeros, then listens.
     *
     * @param maxRows the largest batch accepted
     */
    public ReplicaServer(BatchModel model, String host, int port, int maxRows) {
        if (model == null) {
            throw new IllegalArgumentException("model must not be null");
        }
        if (maxRows < 1) {
            throw new IllegalArgumentException("maxRows must be >= 1, got " + maxRows);
        }
        this.model = model;
        this.maxRows = maxRows;
        model.infer(new float[model.inputs()], 1, new float[model.outputs()]);
        this.compute = new ThreadPoolExecutor(1, 1, 0, TimeUnit.SECONDS, new ArrayBlockingQueue<>(16), r -> {
            Thread t = new Thread(r, "torus-replica-compute");
            t.setDaemon(true);
            return t;
        });
        int maxBody = maxRows * model.inputs() * 4 + 1024;
        this.http = NettyHttp.start(host, port, maxBody, 2, this::handle);
    }

    public int port() {
        return http.port();
    }

    /**
     * Sends {@code requests} batches of 1 to {@code maxRows} rows to this server over HTTP, so that the whole
     * path (Netty, the compute thread, the model) is compiled before the replica says it is ready: a cold
     * replica's first batches are otherwise several times slower than the rest.
     */
    public void warmUpOverHttp(int requests) {
        // a plain socket on one keep-alive connection: the JDK's HttpClient would first build an SSL context,
        // which costs more than the warm-up itself on a busy machine
        try (java.net.Socket sock = new java.net.Socket(java.net.InetAddress.getByName(http.host()), http.port())) {
            sock.setTcpNoDelay(true);
            sock.setSoTimeout(30_000);
            java.io.OutputStream out = sock.getOutputStream();
            java.io.DataInputStream in = new java.io.DataInputStream(new java.io.BufferedInputStream(sock.getInputStream()));
            for (int i = 0; i < requests; i++) {
                int rows = 1 + i % maxRows;
                byte[] body = new byte[rows * model.inputs() * 4];
                out.write(("POST " + BATCH_PATH + " HTTP/1.1\r\nHost: replica\r\n" + ROWS_HEADER + ": " + rows
                        + "\r\nContent-Type: application/octet-stream\r\nContent-Length: " + body.length + "\r\n\r\n")
                        .getBytes(java.nio.charset.StandardCharsets.US_ASCII));
                out.write(body);
                out.flush();
                String status = readLine(in);
                long length = -1;
                for (String line = readLine(in); !line.isEmpty(); line = readLine(in)) {
                    int colon = line.indexOf(':');
                    if (colon > 0 && line.substring(0, colon).trim().equalsIgnoreCase("content-length")) {
                        length = Long.parseLong(line.substring(colon + 1).trim());
                    }
                }
                if (!status.startsWith("HTTP/1.1 200") || length != (long) rows * model.outputs() * 4) {
                    throw new IllegalStateException("warm-up batch answered '" + status + "' with " + length + " bytes");
                }
                in.readFully(new byte[(int) length]);
            }
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException("warm-up batch failed: " + e.getMessage(), e);
        }
        batches.set(0);
    }

    /** {@code http://host:port}. */
    public String endpoint() {
        return "http://" + hostForUrl(http.host()) + ":" + http.port();
    }

    static String hostForUrl(String host) {
        return host.contains(":") ? "[" + host + "]" : host;
    }

    /** Batches accepted but not yet answered. */
    public int inFlight() {
        return inFlight.get();
    }

    public long batchesServed() {
        return batches.get();
    }

    /** Refuses new batches with 503; those in flight finish. */
    public void beginDrain() {
        draining.set(true);
    }

    /** Waits until no batch is in flight, up to {@code timeoutMillis}; true when drained. */
    public boolean awaitDrained(long timeoutMillis) throws InterruptedException {
        long until = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMillis);
        while (inFlight.get() > 0) {
            if (System.nanoTime() > until) {
                return false;
            }
            Thread.sleep(5);
        }
        return true;
    }

    private void handle(ChannelHandlerContext ctx, FullHttpRequest req) {
        String path = req.uri();
        if (path.equals(READY_PATH) && req.method().equals(HttpMethod.GET)) {
            NettyHttp.respond(ctx, req, draining.get() ? HttpResponseStatus.SERVICE_UNAVAILABLE : HttpResponseStatus.OK,
                    "text/plain", NettyHttp.bytes(draining.get() ? "draining\n" : "ready\n"));
            return;
        }
        if (!path.equals(BATCH_PATH) || !req.method().equals(HttpMethod.POST)) {
            NettyHttp.respond(ctx, req, HttpResponseStatus.NOT_FOUND, "text/plain", NettyHttp.bytes("not found\n"));
            return;
        }
        if (draining.get()) {
            NettyHttp.respond(ctx, req, HttpResponseStatus.SERVICE_UNAVAILABLE, "text/plain",
                    NettyHttp.bytes("replica is draining\n"));
            return;
        }
        int rows;
        try {
            rows = Integer.parseInt(req.headers().get(ROWS_HEADER, ""));
        } catch (NumberFormatException e) {
            rows = -1;
        }
        ByteBuf body = req.content();
        if (rows < 1 || rows > maxRows || body.readableBytes() != rows * model.inputs() * 4) {
            NettyHttp.respond(ctx, req, HttpResponseStatus.BAD_REQUEST, "text/plain",
                    NettyHttp.bytes("expected header " + ROWS_HEADER + " in [1, " + maxRows + "] and a body of rows x "
                            + model.inputs() + " float32 values\n"));
            return;
        }
        float[] x = new float[rows * model.inputs()];
        body.nioBuffer().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(x);
        boolean keepAlive = HttpUtil.isKeepAlive(req);
        int n = rows;
        inFlight.incrementAndGet();
        try {
            compute.execute(() -> run(ctx, keepAlive, x, n));
        } catch (RejectedExecutionException e) {
            inFlight.decrementAndGet();
            NettyHttp.respond(ctx, keepAlive, HttpResponseStatus.SERVICE_UNAVAILABLE, "text/plain",
                    NettyHttp.bytes("replica queue is full\n"), "1");
        }
    }

    private void run(ChannelHandlerContext ctx, boolean keepAlive, float[] x, int rows) {
        try {
            float[] y = new float[rows * model.outputs()];
            model.infer(x, rows, y);
            ByteBuffer out = ByteBuffer.allocate(y.length * 4).order(ByteOrder.LITTLE_ENDIAN);
            out.asFloatBuffer().put(y);
            batches.incrementAndGet();
            NettyHttp.respond(ctx, keepAlive, HttpResponseStatus.OK, "application/octet-stream", out.array(), null);
        } catch (RuntimeException e) {
            LOG.warn("batch of {} rows failed: {}", rows, e.toString());
            NettyHttp.respond(ctx, keepAlive, HttpResponseStatus.INTERNAL_SERVER_ERROR, "text/plain",
                    NettyHttp.bytes("inference failed: " + e.getMessage() + "\n"), null);
        } finally {
            inFlight.decrementAndGet();
        }
    }

    private static String readLine(java.io.DataInputStream in) throws java.io.IOException {
        StringBuilder sb = new StringBuilder();
        for (int c = in.read(); c != '\n'; c = in.read()) {
            if (c < 0) {
                throw new java.io.EOFException("connection closed during warm-up");
            }
            if (c != '\r') {
                sb.append((char) c);
            }
        }
        return sb.toString();
    }

    @Override
    public void close() {
        draining.set(true);
        http.close();
        compute.shutdownNow();
        try {
            compute.awaitTermination(5, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        model.close();
    }
}
