package dev.torus.comm;

import static dev.torus.internal.NativeAccess.TOKEN;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.NativeLibrary;
import dev.torus.jni.TorusNative;
import dev.torus.tensor.Tensor;
import dev.torus.testing.TorusTestBase;
import org.junit.jupiter.api.Test;

/**
 * The gradient hooks' native fp32 loops (add, subtract, the rank-ordered chunk sum) are bitwise the
 * scalar Java loops they replaced, on random values with NaN, ±infinity, ±0 and subnormals mixed in, at
 * lengths that do and do not divide the threads' ranges, with one kernel thread and with several.
 */
class HookLoopsTest extends TorusTestBase {
    private static float[] values(long seed, int n) {
        return HookLoopsTestValues.values(seed, n);
    }

    private static void assertBitwise(float[] want, float[] got, String what) {
        assertEquals(want.length, got.length);
        for (int i = 0; i < want.length; i++) {
            if (Float.floatToRawIntBits(want[i]) != Float.floatToRawIntBits(got[i])
                    && !(Float.isNaN(want[i]) && Float.isNaN(got[i]))) {
                throw new AssertionError(what + ": element " + i + " is " + got[i] + ", the scalar loop gives " + want[i]);
            }
        }
    }

    @Test
    void nativeLoopsAreBitwiseTheScalarLoops() {
        int saved = NativeLibrary.cpuThreads();
        try {
            for (int threads : new int[] {1, 3}) {
                NativeLibrary.setCpuThreads(threads);
                for (int n : new int[] {1, 15, 16, 1000, 65_537, 300_001}) {
                    float[] a = values(n, n);
                    float[] b = values(n + 1, n);
                    float[] sum = new float[n];
                    float[] diff = new float[n];
                    for (int i = 0; i < n; i++) {
                        sum[i] = a[i] + b[i];
                        diff[i] = a[i] - b[i];
                    }
                    try (Tensor ta = Tensor.fromArray(root, a, n); Tensor tb = Tensor.fromArray(root, b, n);
                         Tensor out = Tensor.fromArray(root, new float[n], n)) {
                        CompressedAllReduce.FloatLoops.add(out.dataAddress(TOKEN), ta.dataAddress(TOKEN),
                                tb.dataAddress(TOKEN), n);
                        assertBitwise(sum, out.toFloatArray(), "add n=" + n);
                        CompressedAllReduce.FloatLoops.sub(out.dataAddress(TOKEN), ta.dataAddress(TOKEN),
                                tb.dataAddress(TOKEN), n);
                        assertBitwise(diff, out.toFloatArray(), "sub n=" + n);
                        // in place: dst aliases a
                        CompressedAllReduce.FloatLoops.add(ta.dataAddress(TOKEN), ta.dataAddress(TOKEN),
                                tb.dataAddress(TOKEN), n);
                        assertBitwise(sum, ta.toFloatArray(), "add in place n=" + n);
                    }
                    for (int ranks : new int[] {1, 2, 3, 8}) {
                        int chunk = Math.max(1, n / ranks);
                        float[] src = values(7L * n + ranks, ranks * chunk);
                        for (int divisor : new int[] {1, ranks}) {
                            float[] want = new float[chunk];
                            for (int i = 0; i < chunk; i++) {
                                float d = src[i];
                                for (int r = 1; r < ranks; r++) {
                                    d = d + src[r * chunk + i];
                                }
                                want[i] = divisor == 1 ? d : d / (float) divisor;
                            }
                            try (Tensor s = Tensor.fromArray(root, src, src.length);
                                 Tensor out = Tensor.fromArray(root, new float[chunk], chunk)) {
                                CompressedAllReduce.FloatLoops.sumChunks(out.dataAddress(TOKEN), s.dataAddress(TOKEN),
                                        ranks, chunk, divisor);
                                assertBitwise(want, out.toFloatArray(), "sum of " + ranks + " chunks of " + chunk
                                        + " / " + divisor + ", " + threads + " threads");
                            }
                        }
                    }
                }
            }
        } finally {
            NativeLibrary.setCpuThreads(saved);
        }
    }

    @Test
    void badArgumentsAreRefusedByName() {
        try (Tensor t = Tensor.fromArray(root, new float[8], 8)) {
            long p = t.dataAddress(TOKEN);
            RuntimeException e = assertThrows(IllegalArgumentException.class,
                    () -> NativeLibrary.check(TorusNative.torus_f32_add(p, p, p, -1), "f32_add"));
            assertTrue(e.getMessage().contains("n must be >= 0"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> NativeLibrary.check(TorusNative.torus_f32_sum_chunks(p, p, 0, 4, 1), "f32_sum_chunks"));
            assertTrue(e.getMessage().contains("ranks must be >= 1"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> NativeLibrary.check(TorusNative.torus_f32_sum_chunks(p, p, 2, 4, 0), "f32_sum_chunks"));
            assertTrue(e.getMessage().contains("divisor must be >= 1"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> NativeLibrary.check(TorusNative.torus_f32_sub(0, p, p, 4), "f32_sub"));
            assertTrue(e.getMessage().contains("dst"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> NativeLibrary.check(TorusNative.torus_f32_sum_chunks_on(0, 0, p, p, 0, 4, 1), "f32_sum_chunks"));
            assertTrue(e.getMessage().contains("ranks must be >= 1"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> NativeLibrary.check(TorusNative.torus_f32_add_on(0, 0, p, p, 0, 4), "f32_add"));
            assertTrue(e.getMessage().contains("b"), e.getMessage());
        }
    }

    @Test
    void theDeviceEntryPointsRunTheHostLoopsForTheCpuAndSayWhyWithoutCuda() {
        int n = 1000;
        float[] a = values(1, n);
        float[] b = values(2, n);
        try (Tensor ta = Tensor.fromArray(root, a, n); Tensor tb = Tensor.fromArray(root, b, n);
             Tensor out = Tensor.fromArray(root, new float[n], n)) {
            NativeLibrary.check(TorusNative.torus_f32_add_on(-1, 0, out.dataAddress(TOKEN), ta.dataAddress(TOKEN),
                    tb.dataAddress(TOKEN), n), "f32_add_on");
            float[] sum = new float[n];
            for (int i = 0; i < n; i++) {
                sum[i] = a[i] + b[i];
            }
            assertBitwise(sum, out.toFloatArray(), "add on device -1");
            if (!dev.torus.Device.isCudaAvailable()) {
                // no GPU: the CUDA twin refuses with CUDA's reason instead of touching the (host) pointers
                RuntimeException e = assertThrows(RuntimeException.class, () -> NativeLibrary.check(
                        TorusNative.torus_f32_sub_on(0, 0, out.dataAddress(TOKEN), ta.dataAddress(TOKEN),
                                tb.dataAddress(TOKEN), n), "f32_sub_on"));
                assertTrue(e.getMessage().toLowerCase(java.util.Locale.ROOT).contains("cuda"), e.getMessage());
            }
        }
    }
}
