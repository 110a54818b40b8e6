package dev.torus.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.Random;

import org.junit.jupiter.api.Test;

import dev.torus.DType;
import dev.torus.tensor.Tensor;
import dev.torus.testing.Data;
import dev.torus.testing.TorusTestBase;

/** 64M+ elements through the CPU kernels, checked element by element. */
class LargeTensorTest extends TorusTestBase {
    static final int N = (64 << 20) + 77;

    @Test
    void blockwiseAndPerTensorOn64MElementsMatchReference() {
        long seed = Data.freshSeed();
        Random r = new Random(seed);
        float[] x = new float[N];
        for (int i = 0; i < N; i++) {
            x[i] = (r.nextFloat() - 0.5f) * (1 + (i & 1023));
        }
        try (Tensor t = Tensor.fromArray(root, x, N)) {
            try (QuantizedTensor q = Quantizer.quantize(t, QuantSpec.int8Symmetric().blockwise(4096))) {
                byte[] v = q.values().toByteArray();
                float[] s = q.scales().toFloatArray();
                assertEquals((N + 4095) / 4096, s.length);
                for (int b = 0; b < s.length; b++) {
                    int from = b * 4096;
                    int to = Math.min(N, from + 4096);
                    float scale = ScalarReference.symmetricScale(ScalarReference.absMax(x, from, to));
                    assertEquals(scale, s[b], 0f, "scale of block " + b + " (seed " + seed + ")");
                    float inv = ScalarReference.inverseScale(scale);
                    for (int i = from; i < to; i++) {
                        if (v[i] != ScalarReference.quantize(x[i], inv, 0, -127, 127)) {
                            fail("q[" + i + "] (seed " + seed + ")");
                        }
                    }
                }
            }
            try (QuantizedTensor q = Quantizer.quantize(t, QuantSpec.int8Symmetric().perTensor());
                 Tensor y = Quantizer.dequantize(q, DType.BFLOAT16)) {
                float scale = ScalarReference.symmetricScale(ScalarReference.absMax(x, 0, N));
                assertEquals(scale, q.scales().toFloatArray()[0], 0f);
                float inv = ScalarReference.inverseScale(scale);
                byte[] v = q.values().toByteArray();
                short[] d = y.toShortArray();
                for (int i = 0; i < N; i++) {
                    int want = ScalarReference.quantize(x[i], inv, 0, -127, 127);
                    if (v[i] != want || d[i] != ScalarReference.f32ToBf16(ScalarReference.dequantize(want, 0, scale))) {
                        fail("element " + i + " (seed " + seed + ")");
                    }
                }
            }
            try (Tensor h = Quantizer.cast(t, DType.FLOAT16)) {
                short[] hb = h.toShortArray();
                for (int i = 0; i < N; i++) {
                    if (hb[i] != ScalarReference.f32ToF16(x[i])) {
                        fail("fp16 of element " + i + " (seed " + seed + ")");
                    }
                }
            }
        }
    }
}
