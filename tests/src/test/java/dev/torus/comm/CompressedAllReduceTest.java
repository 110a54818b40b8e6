package dev.torus.comm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.tensor.Tensor;
import dev.torus.quant.ScalarReference;
import dev.torus.zookeeper.EmbeddedZooKeeper;
import dev.torus.zookeeper.ZooKeeperStore;
import dev.torus.testing.CommHarness;
import dev.torus.testing.Data;
import dev.torus.testing.TorusTestBase;
import java.time.Duration;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class CompressedAllReduceTest extends TorusTestBase {
    static EmbeddedZooKeeper zk;
    static ZooKeeperStore store;
    static final int WORLD = 3;
    static final int N = 10_007;

    @BeforeAll
    static void start() {
        zk = EmbeddedZooKeeper.startWithoutAuth();
        store = ZooKeeperStore.connect(zk.connectString(), "compressed", Duration.ofSeconds(10));
    }

    @AfterAll
    static void stop() {
        store.close();
        zk.close();
    }

    static float[][] grads(long seed) {
        float[][] g = new float[WORLD][];
        for (int r = 0; r < WORLD; r++) {
            g[r] = Data.mixed(new Random(seed + r), N);
        }
        return g;
    }

    static float round(boolean bf16, float x) {
        return bf16 ? ScalarReference.bf16ToF32(ScalarReference.f32ToBf16(x))
                : ScalarReference.f16ToF32(ScalarReference.f32ToF16(x));
    }

    /** fp16/bf16 follow a scalar model of the algorithm bit for bit: cast, sum in rank order, cast, decode. */
    @ParameterizedTest(name = "bf16={0}")
    @ValueSource(booleans = {false, true})
    void halfPrecisionMatchesTheScalarModelExactly(boolean bf16) throws Exception {
        long seed = Data.freshSeed();
        float[][] g = grads(seed);
        float[] want = new float[N];
        for (int i = 0; i < N; i++) {
            float s = round(bf16, g[0][i]);
            for (int r = 1; r < WORLD; r++) {
                s += round(bf16, g[r][i]);
            }
            want[i] = round(bf16, s / WORLD);
        }
        List<float[]> got = CommHarness.run(store, WORLD, Duration.ofSeconds(20), c -> {
            try (CompressedAllReduce car = new CompressedAllReduce(c, bf16 ? Compression.bf16() : Compression.fp16(), root);
                 Tensor t = Tensor.fromArray(root, g[c.rank()], N)) {
                car.allReduce("w", t, ReduceOp.AVG).await();
                long chunkElems = car.bytesSent() / (2L * (WORLD - 1) * 2);
                assertTrue(chunkElems * WORLD >= N && chunkElems * WORLD < N + WORLD * 64, "chunk " + chunkElems);
                return t.toFloatArray();
            }
        });
        for (int r = 0; r < WORLD; r++) {
            assertArrayEquals(want, got.get(r), "rank " + r + " (seed " + seed + ")");
        }
    }

    /** int8: identical on all ranks, within the two-stage rounding bound, and about 4x fewer bytes. */
    @Test
    void int8IsIdenticalOnAllRanksBoundedAndSmaller() throws Exception {
        long seed = Data.freshSeed();
        float[][] g = grads(seed);
        int block = 256;
        // measured on the sockets: Gloo's TCP transport (shared memory has no socket to count)
        List<Object[]> got = CommHarness.run(store, WORLD, Duration.ofSeconds(20), b -> b.transport(Transport.GLOO), c -> {
            try (CompressedAllReduce car = new CompressedAllReduce(c, Compression.int8Blockwise(block), root);
                 Tensor t = Tensor.fromArray(root, g[c.rank()], N)) {
                car.allReduce("w", t, ReduceOp.SUM).await();
                return new Object[] {t.toFloatArray(), car.bytesSent(), car.uncompressedBytes(), c.bytesSent()};
            }
        });
        float[] r0 = (float[]) got.get(0)[0];
        for (int r = 1; r < WORLD; r++) {
            assertArrayEquals(r0, (float[]) got.get(r)[0], "ranks must agree bit for bit");
        }
        int blocks = (N + block - 1) / block;
        for (int b = 0; b < blocks; b++) {
            double bound = 0;
            double sumAbsMax = 0;
            for (int r = 0; r < WORLD; r++) {
                float m = ScalarReference.absMax(g[r], b * block, Math.min(N, (b + 1) * block));
                bound += m / 127.0 / 2;
                sumAbsMax += m;
            }
            bound += (sumAbsMax + bound) / 127.0 / 2; // second stage: the sum's block absmax is at most this
            for (int i = b * block; i < Math.min(N, (b + 1) * block); i++) {
                double exact = 0;
                for (int r = 0; r < WORLD; r++) {
                    exact += g[r][i];
                }
                assertTrue(Math.abs(r0[i] - exact) <= bound * 1.0001 + 1e-6,
                        "element " + i + ": " + r0[i] + " vs " + exact + ", bound " + bound + " (seed " + seed + ")");
            }
        }
        long sent = (long) got.get(0)[1];
        long plain = (long) got.get(0)[2];
        double ratio = (double) sent / plain;
        long padded = (N + (long) WORLD * block - 1) / ((long) WORLD * block) * WORLD * block;
        double expected = (1 + 4.0 / block) / 4 * padded / N;
        assertEquals(expected, ratio, 1e-4, "int8 block 256 sends (1 + 4/256)/4 of fp32 (plus padding to size x block)");
        long measured = (long) got.get(0)[3];
        assertTrue(measured >= sent && measured <= sent + sent / 50 + 16 * 1024,
                "the sockets carried the encoded payload plus only Gloo's control messages: " + measured + " vs " + sent);
    }

    /** With error feedback the running mean of repeated reductions converges on the exact sum. */
    @Test
    void errorFeedbackRemovesTheBias() throws Exception {
        long seed = Data.freshSeed();
        float[][] g = grads(seed);
        double[] exact = new double[N];
        for (int i = 0; i < N; i++) {
            for (int r = 0; r < WORLD; r++) {
                exact[i] += g[r][i];
            }
        }
        int steps = 24;
        List<double[]> errs = CommHarness.run(store, WORLD, Duration.ofSeconds(30), c -> {
            double[] out = new double[2];
            Compression[] modes = {Compression.int8Blockwise(128), Compression.int8Blockwise(128).withoutErrorFeedback()};
            for (int m = 0; m < 2; m++) {
                double[] mean = new double[N];
                try (CompressedAllReduce car = new CompressedAllReduce(c, modes[m], root)) {
                    for (int s = 0; s < steps; s++) {
                        try (Tensor t = Tensor.fromArray(root, g[c.rank()], N)) {
                            car.allReduce("w", t, ReduceOp.SUM).await();
                            float[] v = t.toFloatArray();
                            for (int i = 0; i < N; i++) {
                                mean[i] += v[i] / steps;
                            }
                        }
                    }
                }
                double e = 0;
                for (int i = 0; i < N; i++) {
                    e += Math.abs(mean[i] - exact[i]);
                }
                out[m] = e / N;
            }
            return out;
        });
        double withEf = errs.get(0)[0];
        double without = errs.get(0)[1];
        assertTrue(withEf < 0.25 * without, "mean abs error with feedback " + withEf + " vs without " + without);
    }

    @Test
    void badInputs() throws Exception {
        CommHarness.run(store, 1, Duration.ofSeconds(10), c -> {
            try (CompressedAllReduce car = new CompressedAllReduce(c, Compression.fp16(), root);
                 Tensor f = Tensor.fromArray(root, new float[8], 8);
                 Tensor f4 = Tensor.fromArray(root, new float[4], 4);
                 Tensor i = Tensor.fromArray(root, new int[8], 8)) {
                assertThrows(IllegalArgumentException.class, () -> car.allReduce("", f, ReduceOp.SUM));
                assertThrows(IllegalArgumentException.class, () -> car.allReduce("a", i, ReduceOp.SUM));
                assertThrows(IllegalArgumentException.class, () -> car.allReduce("a", f, ReduceOp.MAX));
                car.allReduce("a", f, ReduceOp.SUM).await();
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> car.allReduce("a", f4, ReduceOp.SUM));
                assertTrue(e.getMessage().contains("different key"), e.getMessage());
            }
            assertThrows(IllegalArgumentException.class, () -> Compression.int8Blockwise(32));
            assertThrows(IllegalArgumentException.class, () -> new CompressedAllReduce(c, null, root));
            return null;
        });
    }
}
