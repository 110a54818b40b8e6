package dev.torus.comm;

import java.util.SplittableRandom;

/** Random fp32 values with NaN, infinities, signed zeros and subnormals mixed in, for the hook-loop tests. */
final class HookLoopsTestValues {
    private HookLoopsTestValues() {}

    static float[] values(long seed, int n) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] v = new float[n];
        float[] special = {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, 0f, -0f, Float.MIN_VALUE,
            -Float.MIN_NORMAL / 3, Float.MAX_VALUE};
        for (int i = 0; i < n; i++) {
            v[i] = r.nextInt(50) == 0 ? special[r.nextInt(special.length)]
                    : (float) (r.nextGaussian() * Math.pow(10, r.nextInt(9) - 4));
        }
        return v;
    }
}
