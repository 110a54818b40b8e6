package dev.torus.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.Random;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

import dev.torus.DType;
import dev.torus.Device;
import dev.torus.tensor.Tensor;
import dev.torus.testing.Data;
import dev.torus.testing.TorusTestBase;

/**
 * The kernel contract, checked exactly against {@link ScalarReference} on one device.
 * Subclasses pick the device; the GPU subclass thereby also proves CPU/GPU
 * bit-identity, since both must equal the same reference bits.
 */
abstract class KernelSuite extends TorusTestBase {
    static final int[] SIZES = {0, 1, 3, 63, 64, 65, 127, 1000, 4097, 65_537, 1_000_003};

    protected abstract Device device();

    final long seed = Data.freshSeed();
    final Random rnd = new Random(seed);

    /** A FLOAT32 tensor with {@code x} on the device under test. */
    Tensor put(float[] x, long... shape) {
        return moveToDevice(Tensor.fromArray(root, x, shape));
    }

    /** Takes ownership of a CPU tensor and returns it on the device under test. */
    Tensor moveToDevice(Tensor host) {
        if (device().isCpu()) {
            return host;
        }
        try (host) {
            return host.to(device());
        }
    }

    /** {@code x} rounded to {@code t} and stored as a tensor of dtype t on the device. */
    Tensor putAs(DType t, float[] x, long... shape) {
        if (t == DType.FLOAT32) {
            return put(x, shape);
        }
        short[] bits = new short[x.length];
        for (int i = 0; i < x.length; i++) {
            bits[i] = t == DType.FLOAT16 ? ScalarReference.f32ToF16(x[i]) : ScalarReference.f32ToBf16(x[i]);
        }
        return moveToDevice(Tensor.fromBits(root, t, bits, shape));
    }

    String ctx() {
        String isa = device().isCpu() ? ", isa " + dev.torus.NativeLibrary.cpuIsa() : "";
        return " (device " + device() + isa + ", seed " + seed + ")";
    }

    // ---- casts ------------------------------------------------------------------------

    @Test
    void castFloat32ToHalfAndBfloat16MatchesReferenceOnAllKindsOfBits() {
        float[] x = Data.bitPatterns(rnd, 200_003);
        float[] specials = {0f, -0f, Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, 65504f, 65519.99f,
            65520f, Float.MIN_VALUE, Float.MIN_NORMAL, 0x1p-24f, 0x1p-25f, 0x1.8p-25f, 0x1p-14f, 3.0e38f,
            Float.MAX_VALUE, 1.0009765625f, 1.00048828125f, 1.00146484375f, Float.intBitsToFloat(0x7f800001),
            Float.intBitsToFloat(0xffc00123)};
        System.arraycopy(specials, 0, x, 0, specials.length);
        try (Tensor t = put(x, x.length); Tensor h = Quantizer.cast(t, DType.FLOAT16);
             Tensor b = Quantizer.cast(t, DType.BFLOAT16)) {
            short[] hb = h.toShortArray();
            short[] bb = b.toShortArray();
            for (int i = 0; i < x.length; i++) {
                if (hb[i] != ScalarReference.f32ToF16(x[i])) {
                    fail("fp16 of " + Integer.toHexString(Float.floatToRawIntBits(x[i])) + " at " + i + ": got "
                            + Integer.toHexString(hb[i] & 0xffff) + ", expected "
                            + Integer.toHexString(ScalarReference.f32ToF16(x[i]) & 0xffff) + ctx());
                }
                if (bb[i] != ScalarReference.f32ToBf16(x[i])) {
                    fail("bf16 of " + Integer.toHexString(Float.floatToRawIntBits(x[i])) + " at " + i + ": got "
                            + Integer.toHexString(bb[i] & 0xffff) + ", expected "
                            + Integer.toHexString(ScalarReference.f32ToBf16(x[i]) & 0xffff) + ctx());
                }
            }
        }
    }

    @Test
    void everyHalfAndBfloat16BitPatternWidensExactlyAndCrossConverts() {
        short[] all = new short[65536];
        for (int i = 0; i < all.length; i++) {
            all[i] = (short) i;
        }
        for (DType src : new DType[] {DType.FLOAT16, DType.BFLOAT16}) {
            DType other = src == DType.FLOAT16 ? DType.BFLOAT16 : DType.FLOAT16;
            try (Tensor h0 = Tensor.fromBits(root, src, all, all.length); Tensor h = onDevice(h0);
                 Tensor f = Quantizer.cast(h, DType.FLOAT32); Tensor o = Quantizer.cast(h, other)) {
                float[] got = f.toFloatArray();
                short[] cross = o.toShortArray();
                for (int i = 0; i < all.length; i++) {
                    float want = src == DType.FLOAT16 ? ScalarReference.f16ToF32(all[i]) : ScalarReference.bf16ToF32(all[i]);
                    assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(got[i]),
                            src + " pattern " + Integer.toHexString(i) + ctx());
                    short wantCross = other == DType.FLOAT16 ? ScalarReference.f32ToF16(want) : ScalarReference.f32ToBf16(want);
                    assertEquals(wantCross, cross[i], src + "->" + other + " pattern " + Integer.toHexString(i) + ctx());
                }
            }
        }
    }

    /** A copy of {@code host} on the device under test; the caller keeps {@code host}. */
    Tensor onDevice(Tensor host) {
        return host.to(device());
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 1, 7, 17, 1025, 65_539})
    void castRoundTripsKeepSizeAndNonFiniteValues(int n) {
        float[] x = Data.mixed(rnd, n);
        if (n > 3) {
            x[1] = Float.NaN;
            x[2] = Float.POSITIVE_INFINITY;
            x[3] = Float.NEGATIVE_INFINITY;
        }
        for (DType t : new DType[] {DType.FLOAT16, DType.BFLOAT16, DType.FLOAT32}) {
            try (Tensor a = put(x, n); Tensor h = Quantizer.cast(a, t); Tensor back = Quantizer.cast(h, DType.FLOAT32)) {
                float[] got = back.toFloatArray();
                for (int i = 0; i < n; i++) {
                    float want = ScalarReference.roundTo(t, x[i]);
                    assertTrue(Float.floatToRawIntBits(want) == Float.floatToRawIntBits(got[i])
                            || (Float.isNaN(want) && Float.isNaN(got[i])), t + " at " + i + ctx());
                }
            }
        }
    }

    // ---- symmetric int8 ---------------------------------------------------------------

    /** Checks values and scales of a symmetric quantization against the reference. */
    void checkSymmetric(float[] x, int[] groupOf, int groups, QuantizedTensor q, DType in, String what) {
        float[] xr = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            xr[i] = ScalarReference.roundTo(in, x[i]);
        }
        float[] absmax = new float[groups];
        for (int i = 0; i < x.length; i++) {
            if (Float.isFinite(xr[i])) {
                absmax[groupOf[i]] = Math.max(absmax[groupOf[i]], Math.abs(xr[i]));
            }
        }
        float[] scales = q.scales().toFloatArray();
        assertEquals(groups, scales.length, what + ": scale count" + ctx());
        for (int g = 0; g < groups; g++) {
            assertEquals(ScalarReference.symmetricScale(absmax[g]), scales[g], 0f, what + ": scale " + g + ctx());
        }
        byte[] v = q.values().toByteArray();
        for (int i = 0; i < x.length; i++) {
            float s = scales[groupOf[i]];
            int want = ScalarReference.quantize(xr[i], ScalarReference.inverseScale(s), 0, -127, 127);
            if (v[i] != want) {
                fail(what + ": q[" + i + "] of " + xr[i] + " with scale " + s + " is " + v[i] + ", expected " + want + ctx());
            }
        }
        assertNull(q.zeroPoints());
    }

    static int[] blockGroups(int n, int block) {
        return ScalarReference.groupIndex(new long[] {n}, QuantSpec.int8Symmetric().blockwise(block));
    }

    static int[] channelGroups(long[] shape, int axis) {
        return ScalarReference.groupIndex(shape, QuantSpec.int8Symmetric().perChannel(axis));
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"FLOAT32", "FLOAT16", "BFLOAT16"})
    void symmetricPerTensorMatchesReferenceAtEverySize(DType in) {
        for (int n : SIZES) {
            float[] x = Data.mixed(rnd, n);
            try (Tensor t = putAs(in, x, n); QuantizedTensor q = Quantizer.quantize(t, QuantSpec.int8Symmetric().perTensor())) {
                checkSymmetric(x, new int[n], 1, q, in, "per-tensor n=" + n);
            }
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {64, 128, 256, 512, 1024, 2048, 4096})
    void symmetricBlockwiseMatchesReferenceForEveryBlockSize(int block) {
        for (int n : new int[] {0, 1, block - 1, block, block + 1, 3 * block + 17, 100_003}) {
            float[] x = Data.mixed(rnd, n);
            for (DType in : new DType[] {DType.FLOAT32, DType.BFLOAT16}) {
                try (Tensor t = putAs(in, x, n);
                     QuantizedTensor q = Quantizer.quantize(t, QuantSpec.int8Symmetric().blockwise(block))) {
                    checkSymmetric(x, blockGroups(n, block), (n + block - 1) / block, q, in, "block " + block + " n=" + n);
                }
            }
        }
    }

    @Test
    void symmetricPerChannelMatchesReferenceOnEveryAxis() {
        long[][] shapes = {{5}, {3, 7}, {7, 3}, {2, 3, 5}, {4, 1, 9}, {1, 33, 2}, {16, 1000}, {2, 3, 4, 5}};
        for (long[] shape : shapes) {
            int n = 1;
            for (long d : shape) {
                n *= (int) d;
            }
            float[] x = Data.mixed(rnd, n);
            for (int axis = 0; axis < shape.length; axis++) {
                for (DType in : new DType[] {DType.FLOAT32, DType.FLOAT16}) {
                    try (Tensor t = putAs(in, x, shape);
                         QuantizedTensor q = Quantizer.quantize(t, QuantSpec.int8Symmetric().perChannel(axis))) {
                        checkSymmetric(x, channelGroups(shape, axis), (int) shape[axis], q, in,
                                "shape " + java.util.Arrays.toString(shape) + " axis " + axis);
                    }
                }
            }
        }
        // Negative axes count from the end.
        float[] x = Data.mixed(rnd, 24);
        try (Tensor t = put(x, 2, 3, 4); QuantizedTensor a = Quantizer.quantize(t, QuantSpec.int8Symmetric().perChannel(-1));
             QuantizedTensor b = Quantizer.quantize(t, QuantSpec.int8Symmetric().perChannel(2))) {
            assertArrayEquals(b.values().toByteArray(), a.values().toByteArray());
            assertArrayEquals(b.scales().toFloatArray(), a.scales().toFloatArray());
        }
    }

    @Test
    void roundHalfToEvenTiesAndValuesAtAbsmax() {
        // absmax 127 gives scale 1 and inverse 1, so x * inv is x itself.
        float[] x = {127f, -127f, 0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 3.5f, 126.5f, -126.5f, 0f, -0f, 125.49999f};
        int[] want = {127, -127, 0, 2, 2, 0, -2, -2, 4, 126, -126, 0, 0, 125};
        try (Tensor t = put(x, x.length); QuantizedTensor q = Quantizer.quantize(t, QuantSpec.int8Symmetric().perTensor())) {
            assertEquals(1.0f, q.scales().toFloatArray()[0]);
            byte[] v = q.values().toByteArray();
            for (int i = 0; i < x.length; i++) {
                assertEquals(want[i], v[i], "tie handling of " + x[i] + ctx());
            }
        }
        // The element equal to absmax maps to exactly +-127 at any magnitude.
        for (float m : new float[] {1e-30f, 3.3e-7f, 0.1f, 1f, 12345.678f, 3e38f}) {
            float[] y = {m / 3, -m, m / 7, m * 0.5f};
            try (Tensor t = put(y, y.length); QuantizedTensor q = Quantizer.quantize(t, QuantSpec.int8Symmetric().perTensor())) {
                assertEquals(-127, q.values().toByteArray()[1], "absmax element for magnitude " + m + ctx());
            }
        }
    }

    @Test
    void denormalsNaNAndInfinitiesFollowThePolicy() {
        float d = Float.MIN_VALUE * 5;
        float[] x = {1f, -2f, d, -d, Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, 0.25f};
        try (Tensor t = put(x, x.length); QuantizedTensor q = Quantizer.quantize(t, QuantSpec.int8Symmetric().perTensor())) {
            // Statistics ignore non-finite values: absmax is 2.
            assertEquals(2f / 127f, q.scales().toFloatArray()[0]);
            byte[] v = q.values().toByteArray();
            assertEquals(64, v[0]);
            assertEquals(-127, v[1]);
            assertEquals(0, v[2], "denormal rounds to 0");
            assertEquals(0, v[3]);
            assertEquals(0, v[4], "NaN quantizes to the zero point");
            assertEquals(127, v[5], "+Inf saturates to qmax");
            assertEquals(-127, v[6], "-Inf saturates to qmin");
        }
        // A block of only denormals still follows the formula exactly.
        float[] den = new float[64];
        for (int i = 0; i < den.length; i++) {
            den[i] = Float.MIN_VALUE * (i - 30) * 1000;
        }
        try (Tensor t = put(den, den.length);
             QuantizedTensor q = Quantizer.quantize(t, QuantSpec.int8Symmetric().blockwise(64))) {
            checkSymmetric(den, new int[64], 1, q, DType.FLOAT32, "denormal block");
        }
        // An all-zero group has scale 0 and q 0, and non-finite values in it also give 0.
        float[] z = new float[130];
        z[129] = 5f;
        z[3] = Float.POSITIVE_INFINITY;
        try (Tensor t = put(z, z.length); QuantizedTensor q = Quantizer.quantize(t, QuantSpec.int8Symmetric().blockwise(64))) {
            float[] s = q.scales().toFloatArray();
            assertEquals(0f, s[0]);
            assertEquals(0f, s[1]);
            assertEquals(5f / 127f, s[2]);
            byte[] v = q.values().toByteArray();
            for (int i = 0; i < 128; i++) {
                assertEquals(0, v[i], "all-zero group at " + i);
            }
            assertEquals(127, v[129]);
        }
    }

    @Test
    void dequantizeErrorIsAtMostHalfAScaleForInRangeValues() {
        float[] x = Data.mixed(rnd, 50_001);
        for (QuantSpec spec : new QuantSpec[] {QuantSpec.int8Symmetric().perTensor(),
            QuantSpec.int8Symmetric().blockwise(128), QuantSpec.int8Symmetric().perChannel(1)}) {
            try (Tensor t = put(x, 3, 16_667); QuantizedTensor q = Quantizer.quantize(t, spec);
                 Tensor y = Quantizer.dequantize(q, DType.FLOAT32)) {
                float[] s = q.scales().toFloatArray();
                float[] got = y.toFloatArray();
                int[] grp = spec.granularity() == QuantSpec.Granularity.PER_TENSOR ? new int[x.length]
                        : spec.granularity() == QuantSpec.Granularity.BLOCKWISE ? blockGroups(x.length, 128)
                        : channelGroups(new long[] {3, 16_667}, 1);
                for (int i = 0; i < x.length; i++) {
                    float scale = s[grp[i]];
                    // Allow the rounding of the product itself: half a scale plus one ulp of the result.
                    double bound = scale / 2 + Math.ulp(Math.abs(got[i])) + Math.ulp(scale / 2);
                    assertTrue(Math.abs((double) x[i] - got[i]) <= bound,
                            spec + ": |x - deq(q(x))| at " + i + " = " + Math.abs(x[i] - got[i]) + " > " + bound + ctx());
                }
            }
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"FLOAT32", "FLOAT16", "BFLOAT16"})
    void dequantizeRoundsOnceToTheOutputType(DType out) {
        float[] x = Data.mixed(rnd, 10_007);
        try (Tensor t = put(x, x.length); QuantizedTensor q = Quantizer.quantize(t, QuantSpec.int8Symmetric().blockwise(256));
             Tensor y = Quantizer.dequantize(q, out); Tensor yf = Quantizer.cast(y, DType.FLOAT32)) {
            byte[] v = q.values().toByteArray();
            float[] s = q.scales().toFloatArray();
            float[] got = yf.toFloatArray();
            for (int i = 0; i < x.length; i++) {
                float want = ScalarReference.roundTo(out, ScalarReference.dequantize(v[i], 0, s[i / 256]));
                assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(got[i]), out + " at " + i + ctx());
            }
        }
    }

    // ---- affine -----------------------------------------------------------------------

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"INT8", "UINT8"})
    void affinePerTensorMatchesTorchFormulaBitForBit(DType qt) {
        int lo = qt == DType.UINT8 ? 0 : -128;
        int hi = qt == DType.UINT8 ? 255 : 127;
        for (int n : SIZES) {
            float[] x = Data.uniform(rnd, n, 8f);
            float scale = 0.01f + rnd.nextFloat() * 0.1f;
            int zp = lo + rnd.nextInt(hi - lo + 1);
            QuantSpec spec = QuantSpec.affine(qt).perTensor(scale, zp);
            try (Tensor t = put(x, n); QuantizedTensor q = Quantizer.quantize(t, spec);
                 Tensor y = Quantizer.dequantize(q, DType.FLOAT32)) {
                byte[] v = q.values().toByteArray();
                float[] d = y.toFloatArray();
                assertArrayEquals(new int[] {zp}, q.zeroPoints().toIntArray());
                float inv = 1.0f / scale;
                for (int i = 0; i < n; i++) {
                    int want = ScalarReference.quantize(x[i], inv, zp, lo, hi);
                    int got = qt == DType.UINT8 ? v[i] & 0xff : v[i];
                    if (got != want) {
                        fail(spec + ": q[" + i + "] of " + x[i] + " is " + got + ", expected " + want + ctx());
                    }
                    assertEquals(ScalarReference.dequantize(want, zp, scale), d[i], 0f, "dequant at " + i + ctx());
                }
            }
        }
    }

    @Test
    void affinePerChannelMatchesReferenceOnEveryAxis() {
        long[][] shapes = {{6}, {4, 9}, {3, 5, 7}, {8, 1, 3}};
        for (long[] shape : shapes) {
            int n = 1;
            for (long d : shape) {
                n *= (int) d;
            }
            float[] x = Data.uniform(rnd, n, 4f);
            for (int axis = 0; axis < shape.length; axis++) {
                int c = (int) shape[axis];
                float[] scales = new float[c];
                int[] zps = new int[c];
                for (int i = 0; i < c; i++) {
                    scales[i] = 0.005f + rnd.nextFloat() * 0.05f;
                    zps[i] = rnd.nextInt(256);
                }
                QuantSpec spec = QuantSpec.affine(DType.UINT8).perChannel(scales, zps, axis);
                int[] grp = channelGroups(shape, axis);
                try (Tensor t = put(x, shape); QuantizedTensor q = Quantizer.quantize(t, spec)) {
                    byte[] v = q.values().toByteArray();
                    for (int i = 0; i < n; i++) {
                        int want = ScalarReference.quantize(x[i], 1.0f / scales[grp[i]], zps[grp[i]], 0, 255);
                        assertEquals(want, v[i] & 0xff, "axis " + axis + " element " + i + ctx());
                    }
                }
            }
        }
    }

    @Test
    void affineSaturatesAndMapsNaNToZeroPoint() {
        float[] x = {1e9f, -1e9f, Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, 0f};
        try (Tensor t = put(x, x.length);
             QuantizedTensor q = Quantizer.quantize(t, QuantSpec.affine(DType.INT8).perTensor(0.1f, 10))) {
            assertArrayEquals(new byte[] {127, -128, 10, 127, -128, 10}, q.values().toByteArray());
        }
    }

    // ---- stochastic rounding ----------------------------------------------------------

    @Test
    void stochasticRoundingMatchesPhiloxReferenceAndIsReproducible() {
        float[] x = Data.mixed(rnd, 70_001);
        long s = rnd.nextLong();
        QuantSpec spec = QuantSpec.int8Symmetric().blockwise(512).withStochasticRounding(s);
        try (Tensor t = put(x, x.length); QuantizedTensor a = Quantizer.quantize(t, spec);
             QuantizedTensor b = Quantizer.quantize(t, spec);
             QuantizedTensor c = Quantizer.quantize(t, QuantSpec.int8Symmetric().blockwise(512).withStochasticRounding(s + 1))) {
            byte[] va = a.values().toByteArray();
            assertArrayEquals(va, b.values().toByteArray(), "same seed, same bits" + ctx());
            assertTrue(!java.util.Arrays.equals(va, c.values().toByteArray()), "another seed changes the rounding");
            float[] sc = a.scales().toFloatArray();
            for (int i = 0; i < x.length; i++) {
                float inv = ScalarReference.inverseScale(sc[i / 512]);
                int want = ScalarReference.quantizeStochastic(x[i], inv, 0, -127, 127, ScalarReference.uniform(s, i));
                if (va[i] != want) {
                    fail("stochastic q[" + i + "] = " + va[i] + ", expected " + want + ctx());
                }
                int down = (int) Math.floor(x[i] * inv);
                assertTrue(va[i] == Math.max(-127, Math.min(127, down)) || va[i] == Math.max(-127, Math.min(127, down + 1)));
            }
        }
        // The same holds for affine and per-channel specs.
        float[] y = Data.uniform(rnd, 999, 2f);
        QuantSpec aff = QuantSpec.affine(DType.UINT8).perTensor(0.02f, 128).withStochasticRounding(7);
        try (Tensor t = put(y, y.length); QuantizedTensor q = Quantizer.quantize(t, aff)) {
            byte[] v = q.values().toByteArray();
            for (int i = 0; i < y.length; i++) {
                assertEquals(ScalarReference.quantizeStochastic(y[i], 1.0f / 0.02f, 128, 0, 255, ScalarReference.uniform(7, i)),
                        v[i] & 0xff, "affine stochastic at " + i + ctx());
            }
        }
    }

    /**
     * Every length from 1 to 80 and a few odd large ones, per tensor (one scale, the whole tensor split
     * across threads at arbitrary element offsets): the vectorized generator's 16- and 8-counter batches,
     * the scalar head and tail around them, and the thread split all land on the reference draw.
     */
    @Test
    void stochasticRoundingMatchesTheReferenceAtEveryLengthAndSplit() {
        int[] large = {4093, 65_539, 1_000_003};
        for (int k = 0; k < 80 + large.length; k++) {
            int n = k < 80 ? k + 1 : large[k - 80];
            float[] x = Data.uniform(rnd, n, 3f);
            x[0] = 127f; // scale 1, so the expected value is plain to read
            long s = rnd.nextLong();
            try (Tensor t = put(x, n);
                 QuantizedTensor q = Quantizer.quantize(t, QuantSpec.int8Symmetric().perTensor().withStochasticRounding(s))) {
                byte[] v = q.values().toByteArray();
                float inv = ScalarReference.inverseScale(q.scales().toFloatArray()[0]);
                for (int i = 0; i < n; i++) {
                    int want = ScalarReference.quantizeStochastic(x[i], inv, 0, -127, 127, ScalarReference.uniform(s, i));
                    if (v[i] != want) {
                        fail("length " + n + ": stochastic q[" + i + "] = " + v[i] + ", expected " + want + ctx());
                    }
                }
            }
        }
    }

    @Test
    void stochasticRoundingIsUnbiasedOnAverage() {
        int n = 1 << 18;
        float[] x = new float[n];
        java.util.Arrays.fill(x, 0.3f);
        x[0] = 127f; // scale 1: each element rounds to 0 or 1 with P(1) = 0.3
        try (Tensor t = put(x, n);
             QuantizedTensor q = Quantizer.quantize(t, QuantSpec.int8Symmetric().perTensor().withStochasticRounding(seed))) {
            byte[] v = q.values().toByteArray();
            long ones = 0;
            for (int i = 1; i < n; i++) {
                ones += v[i];
            }
            double mean = ones / (double) (n - 1);
            // 0.3 +- 6 standard deviations of a Bernoulli mean over 2^18 draws.
            assertEquals(0.3, mean, 6 * Math.sqrt(0.21 / n), "mean of stochastic rounding" + ctx());
        }
    }

    // ---- statistics --------------------------------------------------------------------

    @Test
    void statisticsIgnoreNonFiniteValuesPerGroup() {
        float[] x = Data.mixed(rnd, 10_000);
        x[5] = Float.NaN;
        x[6000] = Float.NEGATIVE_INFINITY;
        x[7000] = Float.POSITIVE_INFINITY;
        for (QuantSpec spec : new QuantSpec[] {QuantSpec.int8Symmetric().perTensor(), QuantSpec.int8Symmetric().blockwise(64),
            QuantSpec.int8Symmetric().perChannel(0), QuantSpec.int8Symmetric().perChannel(1)}) {
            try (Tensor t = put(x, 40, 250); GroupStats s = Quantizer.stats(t, spec)) {
                int[] grp = spec.granularity() == QuantSpec.Granularity.PER_TENSOR ? new int[x.length]
                        : spec.granularity() == QuantSpec.Granularity.BLOCKWISE ? blockGroups(x.length, 64)
                        : channelGroups(new long[] {40, 250}, spec.axis());
                float[] a = s.absMax().toFloatArray();
                float[] mn = s.min().toFloatArray();
                float[] mx = s.max().toFloatArray();
                float[] wa = new float[a.length];
                float[] wmn = new float[a.length];
                float[] wmx = new float[a.length];
                java.util.Arrays.fill(wmn, Float.POSITIVE_INFINITY);
                java.util.Arrays.fill(wmx, Float.NEGATIVE_INFINITY);
                for (int i = 0; i < x.length; i++) {
                    if (Float.isFinite(x[i])) {
                        int g = grp[i];
                        wa[g] = Math.max(wa[g], Math.abs(x[i]));
                        wmn[g] = Math.min(wmn[g], x[i]);
                        wmx[g] = Math.max(wmx[g], x[i]);
                    }
                }
                for (int g = 0; g < a.length; g++) {
                    assertEquals(wa[g], a[g], 0f, spec + " absmax " + g + ctx());
                    assertEquals(wmn[g], mn[g], 0f, spec + " min " + g + ctx());
                    assertEquals(wmx[g], mx[g], 0f, spec + " max " + g + ctx());
                }
            }
        }
        try (Tensor t = put(new float[] {Float.NaN, Float.POSITIVE_INFINITY}, 2)) {
            assertEquals(0f, Quantizer.absMax(t), "no finite value reports 0");
            assertArrayEquals(new float[] {0f, 0f}, Quantizer.minMax(t));
        }
    }
}
