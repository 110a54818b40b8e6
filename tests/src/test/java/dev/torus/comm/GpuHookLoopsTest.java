package dev.torus.comm;

import static dev.torus.internal.NativeAccess.TOKEN;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.torus.Device;
import dev.torus.NativeLibrary;
import dev.torus.jni.TorusNative;
import dev.torus.memory.Stream;
import dev.torus.tensor.Tensor;
import dev.torus.testing.GpuTest;
import org.junit.jupiter.api.Test;

/**
 * The CUDA twins of the gradient hooks' fp32 loops ({@code torus_f32_add_on}, {@code _sub_on},
 * {@code _sum_chunks_on}) give, bit for bit, what the host loops give on the same values (NaN,
 * infinities, signed zeros and subnormals mixed in), at lengths around the launch's block size.
 */
class GpuHookLoopsTest extends GpuTest {
    private static final Device GPU = Device.cuda(0);

    private static void assertBitwise(float[] want, float[] got, String what) {
        assertEquals(want.length, got.length, what);
        for (int i = 0; i < want.length; i++) {
            if (Float.floatToRawIntBits(want[i]) != Float.floatToRawIntBits(got[i])
                    && !(Float.isNaN(want[i]) && Float.isNaN(got[i]))) {
                throw new AssertionError(what + ": element " + i + " is " + got[i] + " on the GPU, " + want[i]
                        + " on the host");
            }
        }
    }

    @Test
    void cudaTwinsAreBitwiseTheHostLoops() {
        for (int n : new int[] {1, 255, 256, 257, 100_003}) {
            float[] a = HookLoopsTestValues.values(n, n);
            float[] b = HookLoopsTestValues.values(n + 1, n);
            try (Tensor ha = Tensor.fromArray(root, a, n); Tensor hb = Tensor.fromArray(root, b, n);
                 Tensor hout = Tensor.fromArray(root, new float[n], n);
                 Tensor da = moved(Tensor.fromArray(root, a, n), GPU); Tensor db = moved(Tensor.fromArray(root, b, n), GPU);
                 Tensor dout = moved(Tensor.fromArray(root, new float[n], n), GPU)) {
                for (boolean add : new boolean[] {true, false}) {
                    NativeLibrary.check(add
                            ? TorusNative.torus_f32_add_on(-1, 0, hout.dataAddress(TOKEN), ha.dataAddress(TOKEN), hb.dataAddress(TOKEN), n)
                            : TorusNative.torus_f32_sub_on(-1, 0, hout.dataAddress(TOKEN), ha.dataAddress(TOKEN), hb.dataAddress(TOKEN), n),
                            "host");
                    NativeLibrary.check(add
                            ? TorusNative.torus_f32_add_on(0, 0, dout.dataAddress(TOKEN), da.dataAddress(TOKEN), db.dataAddress(TOKEN), n)
                            : TorusNative.torus_f32_sub_on(0, 0, dout.dataAddress(TOKEN), da.dataAddress(TOKEN), db.dataAddress(TOKEN), n),
                            "cuda");
                    Stream.defaultStream(GPU).synchronize();
                    assertBitwise(hout.toFloatArray(), dout.toFloatArray(), (add ? "add" : "sub") + " n=" + n);
                }
            }
            for (int ranks : new int[] {1, 2, 3, 8}) {
                int chunk = Math.max(1, n / ranks);
                float[] src = HookLoopsTestValues.values(7L * n + ranks, ranks * chunk);
                for (int divisor : new int[] {1, ranks}) {
                    try (Tensor hs = Tensor.fromArray(root, src, src.length); Tensor hout = Tensor.fromArray(root, new float[chunk], chunk);
                         Tensor ds = moved(Tensor.fromArray(root, src, src.length), GPU);
                         Tensor dout = moved(Tensor.fromArray(root, new float[chunk], chunk), GPU)) {
                        NativeLibrary.check(TorusNative.torus_f32_sum_chunks_on(-1, 0, hout.dataAddress(TOKEN),
                                hs.dataAddress(TOKEN), ranks, chunk, divisor), "host");
                        NativeLibrary.check(TorusNative.torus_f32_sum_chunks_on(0, 0, dout.dataAddress(TOKEN),
                                ds.dataAddress(TOKEN), ranks, chunk, divisor), "cuda");
                        Stream.defaultStream(GPU).synchronize();
                        assertBitwise(hout.toFloatArray(), dout.toFloatArray(), "sum of " + ranks + " chunks of " + chunk
                                + " / " + divisor);
                    }
                }
            }
        }
    }
}
