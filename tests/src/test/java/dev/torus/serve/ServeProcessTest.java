package dev.torus.serve;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.Device;
import dev.torus.cli.serve.ServeStack;
import dev.torus.memory.Allocator;
import dev.torus.nn.Mlp;
import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code torus serve}'s stack with real replica processes on loopback: predictions equal to the in-process
 * int8 model, the protocol's endpoints, bad input and overload answers, a replica killed with SIGKILL under
 * load, a router restart, and an external load generator ({@code hey}).
 */
@Tag("multiprocess")
class ServeProcessTest {
    private static final int FEATURES = 32;
    private static final int CLASSES = 8;
    private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    @TempDir
    static Path dir;
    static Path int8;

    @BeforeAll
    static void model() {
        Path fp32 = dir.resolve("m.safetensors");
        int8 = dir.resolve("m.int8.safetensors");
        try (Allocator a = Allocator.root("serve-test", Long.MAX_VALUE);
             Mlp mlp = new Mlp(FEATURES, 64, 3, CLASSES, 0f, true, Device.cpu(), a, 5)) {
            MlpModelFile.save(mlp, fp32, Map.of());
        }
        MlpModelFile.quantize(fp32, int8);
    }

    private static ServeStack stack(int min, int max, String emulate, DynamicBatcher.Options batching, int zkPort,
                                    boolean stopOnClose, int maxBody, String logs) throws IOException {
        return ServeStack.start(new ServeStack.Config(int8, "m", FEATURES, CLASSES, "127.0.0.1", 0, null, zkPort,
                batching, Autoscaler.Options.defaults(min, max), emulate, maxBody, 16, dir.resolve(logs), "128m",
                stopOnClose));
    }

    private static void awaitReady(ServeStack s, int n) throws InterruptedException {
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (s.replicas().readyCount() < n) {
            assertTrue(System.nanoTime() < until, "only " + s.replicas().readyCount() + " of " + n + " replicas ready");
            Thread.sleep(20);
        }
    }

    static float[] row(long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] x = new float[FEATURES];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) r.nextGaussian();
        }
        return x;
    }

    static String body(float[] x) {
        StringBuilder sb = new StringBuilder("{\"id\":\"t\",\"inputs\":[{\"name\":\"input\",\"shape\":[1," + FEATURES
                + "],\"datatype\":\"FP32\",\"data\":[");
        for (int i = 0; i < x.length; i++) {
            sb.append(i == 0 ? "" : ",").append(x[i]);
        }
        return sb.append("]}]}").toString();
    }

    static HttpResponse<String> post(String url, String body) throws Exception {
        return HTTP.send(HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(30))
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)).build(),
                HttpResponse.BodyHandlers.ofString());
    }

    static HttpResponse<String> get(String url) throws Exception {
        return HTTP.send(HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(10)).GET().build(),
                HttpResponse.BodyHandlers.ofString());
    }

    static float[] logits(String json) {
        int at = json.indexOf("\"data\":[") + 8;
        String[] parts = json.substring(at, json.indexOf(']', at)).split(",");
        float[] v = new float[parts.length];
        for (int i = 0; i < v.length; i++) {
            v[i] = Float.parseFloat(parts[i]);
        }
        return v;
    }

    @Test
    void servesTheInt8ModelsPredictionsAndRefusesBadInputWithoutHurtingOthers() throws Exception {
        try (ServeStack s = stack(1, 1, null, DynamicBatcher.Options.defaults(), 0, true, 8192, "basic");
             Int8Mlp local = Int8Mlp.load(int8)) {
            String base = s.router().endpoint();
            assertEquals(200, get(base + "/v2/health/live").statusCode());
            awaitReady(s, 1);
            assertEquals(200, get(base + "/v2/health/ready").statusCode());
            assertEquals(200, get(base + "/v2/models/m/ready").statusCode());
            HttpResponse<String> meta = get(base + "/v2/models/m");
            assertEquals(200, meta.statusCode());
            assertTrue(meta.body().contains("\"shape\":[-1,32]"), meta.body());
            for (long seed = 0; seed < 5; seed++) {
                float[] x = row(seed);
                HttpResponse<String> r = post(base + "/v2/models/m/infer", body(x));
                assertEquals(200, r.statusCode(), r.body());
                float[] want = new float[CLASSES];
                local.infer(x, 1, want);
                assertArrayEquals(want, logits(r.body()), "the replica's logits are the in-process int8 model's, bit for bit");
                assertTrue(r.body().contains("\"id\":\"t\""), r.body());
            }
            // bad requests, interleaved with good ones that must still succeed
            String[][] bad = {
                {"{\"inputs\":[", "400", "malformed JSON"},
                {body(row(1)).replace("[1,32]", "[1,31]"), "400", "takes 32 features"},
                {body(row(1)).replace("\"data\":[", "\"data\":[NaN,"), "400", "malformed JSON"},
                {body(row(1)).replace("FP32", "FP16"), "400", "FP32"},
                {"x".repeat(10_000), "413", ""},
            };
            for (String[] b : bad) {
                HttpResponse<String> r = post(base + "/v2/models/m/infer", b[0]);
                assertEquals(Integer.parseInt(b[1]), r.statusCode(), b[2] + ": " + r.body());
                assertTrue(r.body().contains(b[2]), r.body());
                assertEquals(200, post(base + "/v2/models/m/infer", body(row(9))).statusCode());
            }
            assertEquals(404, post(base + "/v2/models/other/infer", body(row(1))).statusCode());
            assertEquals(405, get(base + "/v2/models/m/infer").statusCode());
            assertEquals(404, get(base + "/nope").statusCode());
            String metrics = get(base + "/metrics").body();
            for (String name : new String[] {"torus_serve_requests_total", "torus_serve_latency_seconds",
                    "torus_serve_batch_rows", "torus_serve_replicas", "torus_serve_queue_seconds"}) {
                assertTrue(metrics.contains(name), name + " missing from\n" + metrics);
            }
            assertTrue(metrics.contains("code=\"400\""), metrics);
            pipelinedRequestsAreAnsweredInOrder(base);
            anOversizedPipelinedRequestIsAnsweredInItsTurn(base);
        }
    }

    /** HTTP/1.1 pipelining: three requests in one write on one connection come back in request order. */
    private static void pipelinedRequestsAreAnsweredInOrder(String base) throws Exception {
        URI u = URI.create(base);
        try (java.net.Socket sock = new java.net.Socket(u.getHost(), u.getPort())) {
            sock.setSoTimeout(30_000);
            StringBuilder all = new StringBuilder();
            for (String id : new String[] {"first", "second", "third"}) {
                String b = body(row(id.length())).replace("\"id\":\"t\"", "\"id\":\"" + id + "\"");
                all.append("POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        + "Content-Length: ").append(b.getBytes(StandardCharsets.UTF_8).length).append("\r\n\r\n").append(b);
            }
            sock.getOutputStream().write(all.toString().getBytes(StandardCharsets.UTF_8));
            sock.getOutputStream().flush();
            java.io.DataInputStream in = new java.io.DataInputStream(sock.getInputStream());
            for (String id : new String[] {"first", "second", "third"}) {
                String status = line(in);
                assertTrue(status.startsWith("HTTP/1.1 200"), status);
                int length = -1;
                for (String h = line(in); !h.isEmpty(); h = line(in)) {
                    if (h.toLowerCase(java.util.Locale.ROOT).startsWith("content-length:")) {
                        length = Integer.parseInt(h.substring(15).trim());
                    }
                }
                byte[] got = new byte[length];
                in.readFully(got);
                assertTrue(new String(got, StandardCharsets.UTF_8).contains("\"id\":\"" + id + "\""),
                        "answers out of order: expected " + id + ", got " + new String(got, StandardCharsets.UTF_8));
            }
        }
    }

    /** A 413 from the body limit waits for the answer before it, then closes the connection. */
    private static void anOversizedPipelinedRequestIsAnsweredInItsTurn(String base) throws Exception {
        URI u = URI.create(base);
        try (java.net.Socket sock = new java.net.Socket(u.getHost(), u.getPort())) {
            sock.setSoTimeout(30_000);
            String b = body(row(1));
            String first = "POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    + "Content-Length: " + b.length() + "\r\n\r\n" + b;
            String big = "POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    + "Content-Length: 20000\r\n\r\n" + "x".repeat(20000);
            sock.getOutputStream().write((first + big).getBytes(StandardCharsets.UTF_8));
            sock.getOutputStream().flush();
            java.io.DataInputStream in = new java.io.DataInputStream(sock.getInputStream());
            for (String want : new String[] {"HTTP/1.1 200", "HTTP/1.1 413"}) {
                String status = line(in);
                assertTrue(status.startsWith(want), "expected " + want + " in request order, got " + status);
                int length = 0;
                for (String h = line(in); !h.isEmpty(); h = line(in)) {
                    if (h.toLowerCase(java.util.Locale.ROOT).startsWith("content-length:")) {
                        length = Integer.parseInt(h.substring(15).trim());
                    }
                }
                in.readFully(new byte[length]);
            }
        }
    }

    private static String line(java.io.DataInputStream in) throws IOException {
        StringBuilder sb = new StringBuilder();
        for (int c = in.read(); c != '\n'; c = in.read()) {
            if (c < 0) {
                throw new IOException("connection closed");
            }
            if (c != '\r') {
                sb.append((char) c);
            }
        }
        return sb.toString();
    }

    @Test
    void aModelNoReplicaCanLoadStopsServingAtOnceWithTheCause() throws Exception {
        // a file that parses as torus-mlp in the router but that a replica cannot load: a scale of the wrong length
        Path broken = dir.resolve("broken.safetensors");
        try (SafeTensorsFile f = SafeTensors.read(int8); Allocator a = Allocator.root("broken", Long.MAX_VALUE)) {
            Map<String, dev.torus.tensor.Tensor> ts = new java.util.LinkedHashMap<>();
            for (String n : f.names()) {
                ts.put(n, n.equals("head.weight_scale")
                        ? dev.torus.tensor.Tensor.fromArray(a, new float[] {1f, 2f}, 2) : f.tensor(n, a));
            }
            SafeTensors.write(broken, ts, f.metadata());
            ts.values().forEach(dev.torus.tensor.Tensor::close);
        }
        long t0 = System.nanoTime();
        IllegalStateException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalStateException.class,
                () -> ServeStack.start(new ServeStack.Config(broken, "broken", FEATURES, CLASSES, "127.0.0.1", 0, null,
                        0, DynamicBatcher.Options.defaults(), Autoscaler.Options.defaults(1, 1), null, 1 << 20, 16,
                        dir.resolve("broken-logs"), "128m", true)));
        assertTrue(e.getMessage().contains("trial replica failed") && e.getMessage().contains("head.weight_scale"),
                e.getMessage());
        assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(30), "took too long to refuse");
    }

    @Test
    void aFullQueueAnswers429WithRetryAfterAndTheRestSucceed() throws Exception {
        DynamicBatcher.Options b = DynamicBatcher.Options.defaults().withMaxBatch(1).withMaxQueuedRequests(3);
        try (ServeStack s = stack(1, 1, "150+0", b, 0, true, 1 << 20, "queue")) {
            awaitReady(s, 1);
            String url = s.router().endpoint() + "/v2/models/m/infer";
            List<CompletableFuture<HttpResponse<String>>> fs = new ArrayList<>();
            for (int i = 0; i < 20; i++) {
                fs.add(HTTP.sendAsync(HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(30))
                        .header("Content-Type", "application/json")
                        .POST(HttpRequest.BodyPublishers.ofString(body(row(i)))).build(), HttpResponse.BodyHandlers.ofString()));
            }
            int ok = 0;
            int tooMany = 0;
            for (var f : fs) {
                HttpResponse<String> r = f.get(60, TimeUnit.SECONDS);
                if (r.statusCode() == 200) {
                    ok++;
                } else {
                    assertEquals(429, r.statusCode(), r.body());
                    assertEquals("1", r.headers().firstValue("Retry-After").orElse(null));
                    assertTrue(r.body().contains("overloaded"), r.body());
                    tooMany++;
                }
            }
            assertTrue(tooMany > 0, "no 429 with 20 requests against a queue of 3");
            assertTrue(ok >= 3, "the queued requests must be served, got " + ok);
            assertEquals(200, post(url, body(row(1))).statusCode(), "the server recovers once the burst is gone");
        }
    }

    @Test
    void aReplicaKilledWithSigkillUnderLoadLosesNoRequestAndIsReplaced() throws Exception {
        try (ServeStack s = stack(2, 2, "5+5", DynamicBatcher.Options.defaults().withMaxBatch(4), 0, true, 1 << 20,
                "kill")) {
            awaitReady(s, 2);
            String url = s.router().endpoint() + "/v2/models/m/infer";
            Map<String, Long> before = s.pool().launchedPids();
            assertEquals(2, before.size(), before.toString());
            ConcurrentHashMap<Integer, AtomicInteger> codes = new ConcurrentHashMap<>();
            AtomicInteger failures = new AtomicInteger();
            long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(6);
            List<Thread> clients = new ArrayList<>();
            for (int c = 0; c < 6; c++) {
                int id = c;
                Thread t = new Thread(() -> {
                    for (int i = 0; System.nanoTime() < end; i++) {
                        try {
                            codes.computeIfAbsent(post(url, body(row(id * 10_000L + i))).statusCode(),
                                    k -> new AtomicInteger()).incrementAndGet();
                        } catch (Exception e) {
                            failures.incrementAndGet();
                        }
                    }
                });
                t.start();
                clients.add(t);
            }
            Thread.sleep(1500);
            String victim = before.keySet().iterator().next();
            ProcessHandle.of(before.get(victim)).orElseThrow().destroyForcibly();
            for (Thread t : clients) {
                t.join(60_000);
            }
            assertEquals(0, failures.get(), "client-side failures");
            assertEquals(Map.of(200, codes.get(200).get()).keySet(), codes.keySet(), "only 200s: " + codes);
            assertTrue(codes.get(200).get() > 100, "too few requests: " + codes);
            long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (!(s.replicas().readyCount() == 2 && !s.replicas().ready().contains(victim))) {
                assertTrue(System.nanoTime() < until, "the killed replica was not replaced: ready " + s.replicas().ready());
                Thread.sleep(50);
            }
            assertTrue(s.pool().events().stream().anyMatch(e -> e.kind().equals("died") && e.replicaId().equals(victim)),
                    s.pool().events().toString());
        }
    }

    @Test
    void replicasReRegisterWithARestartedRouter() throws Exception {
        int zkPort;
        try (ServerSocket ss = new ServerSocket(0)) {
            zkPort = ss.getLocalPort();
        }
        String replicaId;
        long pid;
        try (ServeStack s = stack(1, 1, null, DynamicBatcher.Options.defaults(), zkPort, false, 1 << 20, "restart1")) {
            awaitReady(s, 1);
            replicaId = s.replicas().ready().get(0);
            pid = s.pool().launchedPids().get(replicaId);
        }
        try {
            assertTrue(ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false), "the replica outlives its router");
            try (ServeStack s = stack(1, 1, null, DynamicBatcher.Options.defaults(), zkPort, true, 1 << 20, "restart2")) {
                long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(40);
                while (!s.replicas().registered().contains(replicaId)) {
                    assertTrue(System.nanoTime() < until, "replica " + replicaId + " did not re-register; registered "
                            + s.replicas().registered());
                    Thread.sleep(50);
                }
                assertTrue(s.pool().events().stream().anyMatch(e -> e.kind().equals("ready")
                        && e.replicaId().equals(replicaId) && e.detail().startsWith("adopted")), s.pool().events().toString());
                awaitReady(s, 1);
                assertEquals(200, post(s.router().endpoint() + "/v2/models/m/infer", body(row(3))).statusCode());
            }
        } finally {
            ProcessHandle.of(pid).ifPresent(ProcessHandle::destroyForcibly);
        }
    }

    @Test
    void heyAgainstTorusServeGetsOnly200s() throws Exception {
        Path hey = Path.of("/usr/bin/hey");
        Assumptions.assumeTrue(Files.isExecutable(hey), "hey is not installed (apt-get install hey)");
        try (ServeStack s = stack(1, 2, null, DynamicBatcher.Options.defaults(), 0, true, 1 << 20, "hey")) {
            awaitReady(s, 1);
            Path b = dir.resolve("hey-body.json");
            Files.writeString(b, body(row(4)));
            Process p = new ProcessBuilder(hey.toString(), "-n", "400", "-c", "8", "-m", "POST", "-T", "application/json",
                    "-D", b.toString(), s.router().endpoint() + "/v2/models/m/infer").redirectErrorStream(true).start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertTrue(p.waitFor(60, TimeUnit.SECONDS));
            assertEquals(0, p.exitValue(), out);
            assertTrue(out.contains("[200]\t400 responses"), out);
            assertFalse(out.contains("Error distribution"), out);
            assertNotNull(out);
        }
    }
}
