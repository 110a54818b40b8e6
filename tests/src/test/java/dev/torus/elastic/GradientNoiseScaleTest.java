package dev.torus.elastic;

import static dev.torus.testing.BadArgument.assertMessage;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The noise-scale estimate on synthetic linear regression, where it is known: with
 * x ~ N(0, I_d), y = w*·x + ε, ε ~ N(0, σ²), at w = w* + δ the per-sample gradient of
 * ½(w·x − y)² is g = x (x·δ) − x ε, so |G|² = |δ|² and tr(Σ) = (d+1)|δ|² + d σ².
 */
class GradientNoiseScaleTest {

    private static double[] perSampleGradientSum(SplittableRandom rng, double[] delta, double sigma, int n) {
        int d = delta.length;
        double[] sum = new double[d];
        double[] x = new double[d];
        for (int s = 0; s < n; s++) {
            double dot = 0;
            for (int i = 0; i < d; i++) {
                x[i] = rng.nextGaussian();
                dot += x[i] * delta[i];
            }
            double eps = sigma * rng.nextGaussian();
            for (int i = 0; i < d; i++) {
                sum[i] += x[i] * (dot - eps);
            }
        }
        return sum;
    }

    private static double sq(double[] v, double scale) {
        double s = 0;
        for (double x : v) {
            s += (x * scale) * (x * scale);
        }
        return s;
    }

    @Test
    void theEstimateIsWithinTwentyPercentOfTheAnalyticNoiseScale() {
        int d = 16;
        double sigma = 2;
        double[] delta = new double[d];
        delta[0] = 0.6;
        delta[3] = -0.8; // |δ|² = 1
        double analytic = ((d + 1) * 1.0 + d * sigma * sigma) / 1.0; // 81
        for (int[] shape : new int[][] {{4, 16}, {2, 32}, {8, 8}}) {
            int ranks = shape[0];
            int b = shape[1];
            GradientNoiseScale gns = new GradientNoiseScale(0.995); // a window of about 200 steps
            SplittableRandom rng = new SplittableRandom(42 + ranks);
            for (int step = 0; step < 3000; step++) {
                double localSq = 0;
                double[] total = new double[d];
                for (int r = 0; r < ranks; r++) {
                    double[] g = perSampleGradientSum(rng, delta, sigma, b);
                    localSq += sq(g, 1.0 / b) / ranks;
                    for (int i = 0; i < d; i++) {
                        total[i] += g[i];
                    }
                }
                gns.update(localSq, sq(total, 1.0 / (ranks * b)), b, ranks * b);
            }
            double est = gns.noiseScale();
            System.out.printf("noise scale with %d ranks x %d: estimated %.1f, analytic %.1f (%.1f%%)%n", ranks, b, est,
                    analytic, 100 * (est - analytic) / analytic);
            assertTrue(Math.abs(est - analytic) <= 0.2 * analytic, "estimate " + est + " vs " + analytic);
        }
    }

    @Test
    void efficiencyFollowsTheNoiseScaleAndBadInputsAreNamed() {
        GradientNoiseScale gns = new GradientNoiseScale(0.0);
        assertEquals(1.0, gns.efficiency(256, 64), "no estimate yet: no preference");
        // |g_B|² = 1 + 100/256 and |g_b|² = 1 + 100/64: B_noise = 100
        gns.update(1 + 100.0 / 64, 1 + 100.0 / 256, 64, 256);
        assertEquals(100.0, gns.noiseScale(), 1e-9);
        assertEquals((100.0 + 64) / (100 + 256), gns.efficiency(256, 64), 1e-12);
        assertMessage("decay", () -> new GradientNoiseScale(1.0));
        assertMessage("perRankBatch", () -> gns.update(1, 1, 8, 8));
        assertMessage("squared norms", () -> gns.update(Double.NaN, 1, 8, 16));
    }
}
