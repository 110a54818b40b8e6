package dev.torus.serve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.net.httpserver.HttpServer;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * A registered endpoint that answers a batch with a body far larger than the batch needs (a broken or hostile
 * replica): the router must cancel the transfer after the expected size, retry, and fail the request cleanly,
 * never buffer the body.
 */
class HostileReplicaTest {
    @Test
    void anOversizedAnswerIsCutOffAndTheRequestFailsCleanly() throws Exception {
        HttpServer fake = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        fake.createContext("/v1/batch", ex -> {
            ex.getRequestBody().readAllBytes();
            ex.sendResponseHeaders(200, 1_500_000_000L);
            byte[] zeros = new byte[1 << 16];
            try (OutputStream out = ex.getResponseBody()) {
                for (long sent = 0; sent < 1_500_000_000L; sent += zeros.length) {
                    out.write(zeros);
                }
            } catch (java.io.IOException closedByTheRouter) {
                // expected: the router stops reading
            }
        });
        fake.start();
        ServeMetrics metrics = new ServeMetrics("m", () -> 1, () -> 0, () -> 0);
        ReplicaSet set = new ReplicaSet(1, "00112233445566778899aabbccddeeff");
        // one attempt on the only replica, then no ready replica for 3 s: the request fails with 503's exception
        try (DynamicBatcher b = new DynamicBatcher(new DynamicBatcher.Options(1, 1_000_000L, 16, 8, 3_000_000_000L,
                10_000_000_000L), set, 4, 2, metrics)) {
            set.update(List.of(new ReplicaRegistry.Entry("evil", "http://127.0.0.1:" + fake.getAddress().getPort(), 1,
                    "00112233445566778899aabbccddeeff")));
            long t0 = System.nanoTime();
            ExecutionException e = org.junit.jupiter.api.Assertions.assertThrows(ExecutionException.class,
                    () -> b.submit(new float[4], 1).get(20, TimeUnit.SECONDS));
            assertTrue(e.getCause() instanceof DynamicBatcher.NoReplicaException, e.toString());
            assertTrue(e.getCause().getMessage().contains("no ready replica"), e.getCause().getMessage());
            assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(15));
            assertEquals(0, set.readyCount(), "the replica that answered too much is marked failed");
            assertTrue(metrics.scrape().contains("torus_serve_retries_total{model=\"m\"} 1.0"), metrics.scrape());
        } finally {
            fake.stop(0);
        }
    }
}
