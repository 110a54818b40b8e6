package dev.torus.quant;

/**
 * The quantization spec (docs/QUANTIZATION.md) as slow scalar Java, used by the
 * tests and by the benchmark's self-check. It is written independently of the
 * native kernels: conversions go through double-precision {@code Math.rint}
 * rather than bit manipulation, so a bug in either shows up as a mismatch.
 * Stateless and thread-safe.
 */
public final class ScalarReference {
    private ScalarReference() {}

    // ---- float16 ----------------------------------------------------------------------
    public static short f32ToF16(float f) {
        int b = Float.floatToRawIntBits(f);
        int sign = (b >>> 16) & 0x8000;
        if (Float.isNaN(f)) {
            return (short) (sign | 0x7e00 | ((b >>> 13) & 0x3ff));
        }
        double a = Math.abs((double) f);
        if (a >= 65520.0) {
            return (short) (sign | 0x7c00);
        }
        if (a < 0x1p-14) {
            int m = (int) Math.rint(a * 0x1p24);
            return (short) (sign | m);
        }
        int e = Math.getExponent(a);
        double m = Math.rint(Math.scalb(a, 10 - e));
        if (m == 2048) {
            m = 1024;
            e++;
        }
        return (short) (sign | ((e + 15) << 10) | ((int) m - 1024));
    }

    public static float f16ToF32(short h) {
        int sign = (h & 0x8000) != 0 ? 1 : 0;
        int e = (h >>> 10) & 0x1f;
        int m = h & 0x3ff;
        if (e == 31) {
            return Float.intBitsToFloat((sign << 31) | 0x7f800000 | (m << 13));
        }
        double v = e == 0 ? Math.scalb((double) m, -24) : Math.scalb((double) (1024 + m), e - 25);
        return (float) (sign == 1 ? -v : v);
    }

    // ---- bfloat16 -----------------------------------------------------------------------
    public static short f32ToBf16(float f) {
        int b = Float.floatToRawIntBits(f);
        int sign = (b >>> 16) & 0x8000;
        if (Float.isNaN(f)) {
            return (short) ((b >>> 16) | 0x0040);
        }
        if (Float.isInfinite(f)) {
            return (short) (b >>> 16);
        }
        double a = Math.abs((double) f);
        if (a == 0) {
            return (short) sign;
        }
        if (a < 0x1p-126) {
            int m = (int) Math.rint(Math.scalb(a, 133));
            return (short) (sign | m);
        }
        int e = Math.getExponent(a);
        double m = Math.rint(Math.scalb(a, 7 - e));
        if (m == 256) {
            m = 128;
            e++;
        }
        if (e > 127) {
            return (short) (sign | 0x7f80);
        }
        return (short) (sign | ((e + 127) << 7) | ((int) m - 128));
    }

    public static float bf16ToF32(short h) {
        return Float.intBitsToFloat((h & 0xffff) << 16);
    }

    /** Rounds a float to the given dtype's nearest value and widens it back (FLOAT32 is the identity). */
    public static float roundTo(dev.torus.DType t, float v) {
        switch (t) {
            case FLOAT16:
                return f16ToF32(f32ToF16(v));
            case BFLOAT16:
                return bf16ToF32(f32ToBf16(v));
            default:
                return v;
        }
    }

    // ---- quantization -------------------------------------------------------------------
    /** The scale group of every element of a tensor of this shape under {@code spec} (see QUANTIZATION.md). */
    public static int[] groupIndex(long[] shape, QuantSpec spec) {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        int[] g = new int[Math.toIntExact(n)];
        switch (spec.granularity()) {
            case BLOCKWISE:
                for (int i = 0; i < g.length; i++) {
                    g[i] = i / spec.blockSize();
                }
                break;
            case PER_CHANNEL: {
                int axis = spec.axis() < 0 ? spec.axis() + shape.length : spec.axis();
                long inner = 1;
                for (int i = axis + 1; i < shape.length; i++) {
                    inner *= shape[i];
                }
                for (int i = 0; i < g.length; i++) {
                    g[i] = (int) ((i / inner) % shape[axis]);
                }
                break;
            }
            default:
                break;
        }
        return g;
    }

    public static float symmetricScale(float absmax) {
        return absmax / 127.0f;
    }

    public static float inverseScale(float scale) {
        return scale == 0.0f ? 0.0f : 1.0f / scale;
    }

    /** q = clamp(rint(x * inv) + zp, qmin, qmax); NaN products map to zp. */
    public static int quantize(float x, float inv, int zp, int qmin, int qmax) {
        float v = x * inv;
        if (Float.isNaN(v)) {
            return zp;
        }
        float r = (float) Math.rint(v) + (float) zp;
        return (int) Math.max(qmin, Math.min(qmax, r));
    }

    /** q = clamp(floor(v) + (u < v - floor(v)) + zp, qmin, qmax). */
    public static int quantizeStochastic(float x, float inv, int zp, int qmin, int qmax, float u) {
        float v = x * inv;
        if (Float.isNaN(v)) {
            return zp;
        }
        float fl = (float) Math.floor(v);
        float r = fl + (u < v - fl ? 1.0f : 0.0f) + (float) zp;
        return (int) Math.max(qmin, Math.min(qmax, r));
    }

    public static float dequantize(int q, int zp, float scale) {
        return (float) (q - zp) * scale;
    }

    /** Absmax over finite values (0 if none). */
    public static float absMax(float[] x, int from, int to) {
        float m = 0;
        for (int i = from; i < to; i++) {
            if (Float.isFinite(x[i])) {
                m = Math.max(m, Math.abs(x[i]));
            }
        }
        return m;
    }

    // ---- Philox4x32-10 -------------------------------------------------------------------
    public static int[] philox(int c0, int c1, int c2, int c3, int k0, int k1) {
        int x0 = c0, x1 = c1, x2 = c2, x3 = c3;
        for (int r = 0; r < 10; r++) {
            long p0 = (0xD2511F53L) * (x0 & 0xffffffffL);
            long p1 = (0xCD9E8D57L) * (x2 & 0xffffffffL);
            int n0 = (int) (p1 >>> 32) ^ x1 ^ k0;
            int n1 = (int) p1;
            int n2 = (int) (p0 >>> 32) ^ x3 ^ k1;
            int n3 = (int) p0;
            x0 = n0;
            x1 = n1;
            x2 = n2;
            x3 = n3;
            k0 += 0x9E3779B9;
            k1 += 0xBB67AE85;
        }
        return new int[] {x0, x1, x2, x3};
    }

    /** The uniform number in [0, 1) that stochastic rounding uses for element i. */
    public static float uniform(long seed, long i) {
        int[] o = philox((int) (i >>> 2), (int) (i >>> 34), 0, 0, (int) seed, (int) (seed >>> 32));
        return (o[(int) (i & 3)] >>> 8) * 0x1p-24f;
    }
}
