package dev.torus.elastic;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * Goodput-driven batch sizing on a problem whose answer is known: linear regression with Gaussian
 * inputs, where the gradient noise scale has a closed form, and a step time of known shape.
 */
class AdaptiveBatchSizeTest {

    @Test
    void theStepTimeFitRecoversAKnownModelFromNoisyTimes() {
        SplittableRandom r = new SplittableRandom(3);
        StepTimeModel m = new StepTimeModel(1.0);
        assertTrue(Double.isNaN(m.predict(32)), "no prediction from nothing");
        for (int i = 0; i < 400; i++) {
            int b = 8 << r.nextInt(5);
            m.observe(b, (0.020 + 0.0005 * b) * (1 + 0.05 * (r.nextDouble() - 0.5)));
        }
        double[] c = m.coefficients();
        assertEquals(0.020, c[0], 0.020 * 0.05, "fixed part");
        assertEquals(0.0005, c[1], 0.0005 * 0.05, "per-sample part");
        StepTimeModel one = new StepTimeModel(0.9);
        one.observe(16, 0.1);
        one.observe(16, 0.11);
        assertTrue(Double.isNaN(one.predict(32)), "one batch size identifies no slope");
    }

    @Test
    void theLearningRateRuleIsAdaScalesGain() {
        AdaptiveBatchSize a = new AdaptiveBatchSize(64, 0.1, 16, 1024, 0.05);
        assertEquals(0.1, a.learningRate(256, 0), 1e-12, "no gradient noise: a bigger batch earns no bigger step");
        assertEquals(0.1 * 4, a.learningRate(256, 1e12), 1e-6, "all noise: the linear scaling rule");
        double mid = a.learningRate(256, 64);
        assertEquals(0.1 * 4 * (64 + 64) / (64.0 + 256), mid, 1e-12);
        assertTrue(mid > 0.1 && mid < 0.4);
        assertEquals(0.1, a.learningRate(256, Double.NaN), 0, "no estimate yet: the base rate");
    }

    @Test
    void onRegressionWithKnownNoiseItPicksANearOptimalBatchAndChangesOnlyForFivePercent() {
        int d = 16;
        double sigma = 2.0;
        double[] delta = new double[d];   // w - w*, held fixed so that the noise scale stays put
        for (int j = 0; j < d; j++) {
            delta[j] = 0.25;
        }
        double dd = d * 0.25 * 0.25;
        double analytic = ((d + 1) * dd + d * sigma * sigma) / dd; // tr(Σ)/|G|² for Gaussian inputs
        int world = 4;
        int batch = 64;
        GradientNoiseScale noise = new GradientNoiseScale(0.995); // a window of about 200 steps
        SplittableRandom r = new SplittableRandom(11);
        for (int step = 0; step < 3000; step++) {
            double[] global = new double[d];
            double localSq = 0;
            int b = batch / world;
            for (int rank = 0; rank < world; rank++) {
                double[] g = new double[d];
                for (int i = 0; i < b; i++) {
                    double[] x = new double[d];
                    double dot = 0;
                    for (int j = 0; j < d; j++) {
                        x[j] = r.nextGaussian();
                        dot += x[j] * delta[j];
                    }
                    double resid = dot - sigma * r.nextGaussian();
                    for (int j = 0; j < d; j++) {
                        g[j] += x[j] * resid / b;
                    }
                }
                for (int j = 0; j < d; j++) {
                    localSq += g[j] * g[j] / world;
                    global[j] += g[j] / world;
                }
            }
            double globalSq = 0;
            for (double v : global) {
                globalSq += v * v;
            }
            noise.update(localSq, globalSq, b, batch);
        }
        double est = noise.noiseScale();
        assertEquals(analytic, est, 0.2 * analytic, "noise scale estimate vs the analytic " + analytic);

        // a step time of known shape: 30 ms fixed, 0.2 ms per sample per rank
        StepTimeModel times = new StepTimeModel(1.0);
        for (int b = 4; b <= 256; b *= 2) {
            times.observe(b, 0.030 + 0.0002 * b);
        }
        AdaptiveBatchSize policy = new AdaptiveBatchSize(32, 0.05, 8, 4096, 0.05);
        AdaptiveBatchSize.Decision dec = policy.decide(batch, world, noise, times);
        assertTrue(dec.changed(), "batch 64 is far from the optimum: " + dec);
        double bestTrue = 0;
        for (int b = world; b <= 4096; b += world) {
            bestTrue = Math.max(bestTrue, trueGoodput(b, world, analytic));
        }
        assertTrue(trueGoodput(dec.batch(), world, analytic) >= 0.95 * bestTrue, "chosen " + dec.batch()
                + " gives " + trueGoodput(dec.batch(), world, analytic) + " of the optimum " + bestTrue);
        assertEquals(policy.learningRate(dec.batch(), est), dec.learningRate(), 1e-12);
        // at the chosen batch, nothing else is 5% better: it stays
        AdaptiveBatchSize.Decision again = policy.decide(dec.batch(), world, noise, times);
        assertFalse(again.changed(), again.toString());
        assertEquals(dec.batch(), again.batch());
        // a 5% threshold the best cannot clear keeps the batch too
        AdaptiveBatchSize picky = new AdaptiveBatchSize(32, 0.05, 8, 4096, 9.0);
        assertFalse(picky.decide(batch, world, noise, times).changed());
    }

    /** The 5% rule, at its edge: a candidate 3% better is not taken, one 6% better is. */
    @Test
    void theBatchChangesOnlyForAtLeastTheMinimumGain() {
        GradientNoiseScale noise = new GradientNoiseScale(0.0);
        // |g_b|^2 and |g_B|^2 that give |G|^2 = 1 and tr(Σ) = 6: B_noise = 6
        noise.update(1 + 6.0 / 8, 1 + 6.0 / 16, 8, 16);
        assertEquals(6, noise.noiseScale(), 1e-9);
        StepTimeModel times = new StepTimeModel(1.0);
        times.observe(8, 0.100);   // a step time that grows with the batch: fixed 0.05 s + 6.25 ms per sample
        times.observe(16, 0.150);
        // two candidates, the current 16 and 32 (world 16: the multiples of 16 in 16..32)
        double g16 = AdaptiveBatchSize.goodput(16, 16, 6, times, 16);
        double g32 = AdaptiveBatchSize.goodput(32, 16, 6, times, 16); // 1.8x the throughput, 22/38 the efficiency
        double gain = g32 / g16 - 1;
        assertTrue(gain > 0.03 && gain < 0.06, "the setup wants a gain between 3% and 6%, got " + gain);
        assertFalse(new AdaptiveBatchSize(16, 0.1, 16, 32, gain + 0.01).decide(16, 16, noise, times).changed(),
                "a gain just below the threshold keeps the batch");
        AdaptiveBatchSize.Decision d = new AdaptiveBatchSize(16, 0.1, 16, 32, gain - 0.01).decide(16, 16, noise, times);
        assertTrue(d.changed() && d.batch() == 32, "a gain just above the threshold takes the better batch: " + d);
    }

    @Test
    void theCandidateLoopEndsAtTheLargestBatches() {
        GradientNoiseScale noise = new GradientNoiseScale(0.0);
        noise.update(2, 1.5, 8, 16);
        StepTimeModel times = new StepTimeModel(1.0);
        times.observe(8, 0.1);
        times.observe(16, 0.2);
        AdaptiveBatchSize a = new AdaptiveBatchSize(16, 0.1, AdaptiveBatchSize.MAX_BATCH - 10,
                AdaptiveBatchSize.MAX_BATCH, 0.05);
        assertTrue(a.decide(16, 7, noise, times).batch() > 0, "ends, without overflowing");
        assertThrows(IllegalArgumentException.class, () -> new AdaptiveBatchSize(16, 0.1, 1, Integer.MAX_VALUE, 0.05));
    }

    private static double trueGoodput(int b, int world, double noiseScale) {
        return b / (0.030 + 0.0002 * b / world) * (noiseScale + 32) / (noiseScale + b);
    }

    @Test
    void badArgumentsNameTheArgument() {
        assertThrows(IllegalArgumentException.class, () -> new StepTimeModel(0));
        StepTimeModel m = new StepTimeModel(1);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> m.observe(8, -1));
        assertTrue(e.getMessage().contains("seconds"));
        e = assertThrows(IllegalArgumentException.class, () -> m.observe(Double.NaN, 1));
        assertTrue(e.getMessage().contains("perRankBatch"));
        e = assertThrows(IllegalArgumentException.class, () -> new AdaptiveBatchSize(0, 0.1, 1, 2, 0.05));
        assertTrue(e.getMessage().contains("baseBatch"));
        e = assertThrows(IllegalArgumentException.class, () -> new AdaptiveBatchSize(8, 0.1, 4, 2, 0.05));
        assertTrue(e.getMessage().contains("minBatch"));
        e = assertThrows(IllegalArgumentException.class, () -> new AdaptiveBatchSize(8, -1, 1, 2, 0.05));
        assertTrue(e.getMessage().contains("baseLr"));
        AdaptiveBatchSize a = new AdaptiveBatchSize(8, 0.1, 1, 64, 0.05);
        e = assertThrows(IllegalArgumentException.class, () -> a.decide(8, 0, new GradientNoiseScale(0.9), m));
        assertTrue(e.getMessage().contains("world"));
    }
}
