package dev.torus.elastic;

/**
 * Chooses the global batch size by goodput, as Pollux and AdaptDL do: goodput(B) = throughput(B) ×
 * statistical efficiency(B), with throughput {@code B / T(B/W)} from a {@link StepTimeModel} and
 * efficiency {@code (B_noise + B0) / (B_noise + B)} from a {@link GradientNoiseScale}.
 *
 * <p>Rules:
 * <ul>
 *   <li>Candidates are the multiples of the world size W between {@code minBatch} and
 *       {@code maxBatch} (every rank takes the same share).</li>
 *   <li>The batch changes only when the best candidate's predicted goodput is at least
 *       {@code minGain} (5% by default) above the current batch's: a noisy estimate does not make
 *       it flap.</li>
 *   <li>Learning rate: AdaScale's gain, {@code lr(B) = lr0 · r(B)} with
 *       {@code r(B) = (B/B0) · (B_noise + B0) / (B_noise + B)}. It is the linear scaling rule
 *       ({@code r = B/B0}) while gradient noise dominates and no scaling ({@code r = 1}) when it
 *       is negligible, and never more than linear.</li>
 * </ul>
 * Without a noise estimate or a step-time fit yet, it keeps the current batch. Every member must
 * feed it the same (all-reduced) figures so that all decide alike. Not thread-safe.
 */
public final class AdaptiveBatchSize {
    /** The largest batch considered (2^30 samples): beyond it the candidate loop would overflow. */
    public static final int MAX_BATCH = 1 << 30;

    private final int baseBatch;
    private final double baseLr;
    private final int minBatch;
    private final int maxBatch;
    private final double minGain;

    /** The decision at one step: the batch to use, its learning rate, and the goodputs compared. */
    public record Decision(int batch, double learningRate, double currentGoodput, double bestGoodput, boolean changed) {}

    /**
     * @param baseBatch B0, the batch {@code baseLr} was tuned for
     * @param minGain the least relative goodput gain that changes the batch (0.05 = 5%)
     */
    public AdaptiveBatchSize(int baseBatch, double baseLr, int minBatch, int maxBatch, double minGain) {
        if (baseBatch < 1) {
            throw new IllegalArgumentException("baseBatch must be >= 1, got " + baseBatch);
        }
        if (!(baseLr > 0) || Double.isInfinite(baseLr)) {
            throw new IllegalArgumentException("baseLr must be a positive number, got " + baseLr);
        }
        if (minBatch < 1 || maxBatch < minBatch || maxBatch > MAX_BATCH) {
            throw new IllegalArgumentException("need 1 <= minBatch <= maxBatch <= " + MAX_BATCH + ", got " + minBatch
                    + " and " + maxBatch);
        }
        if (!(minGain >= 0 && minGain < 10)) {
            throw new IllegalArgumentException("minGain must be in [0, 10), got " + minGain);
        }
        this.baseBatch = baseBatch;
        this.baseLr = baseLr;
        this.minBatch = minBatch;
        this.maxBatch = maxBatch;
        this.minGain = minGain;
    }

    /** AdaScale's learning rate for a global batch {@code batch} at noise scale {@code noiseScale} (NaN: {@code baseLr}). */
    public double learningRate(int batch, double noiseScale) {
        if (batch < 1) {
            throw new IllegalArgumentException("batch must be >= 1, got " + batch);
        }
        if (Double.isNaN(noiseScale)) {
            return baseLr;
        }
        double bn = Math.max(0, noiseScale);
        return baseLr * ((double) batch / baseBatch) * (bn + baseBatch) / (bn + batch);
    }

    /** Predicted samples of progress per second (at the base batch's efficiency) for {@code batch} on {@code world} ranks. */
    public static double goodput(int batch, int world, double noiseScale, StepTimeModel times, int baseBatch) {
        if (batch < 1 || world < 1 || baseBatch < 1) {
            throw new IllegalArgumentException("batch, world and baseBatch must be >= 1, got " + batch + ", " + world
                    + " and " + baseBatch);
        }
        if (times == null) {
            throw new IllegalArgumentException("times must not be null");
        }
        double t = times.predict((double) batch / world);
        if (Double.isNaN(t) || t <= 0) {
            return Double.NaN;
        }
        double eff = Double.isNaN(noiseScale) ? 1 : (Math.max(0, noiseScale) + baseBatch) / (Math.max(0, noiseScale) + batch);
        return batch / t * eff;
    }

    /** Decides the batch for the next steps, given the current one and the world size. */
    public Decision decide(int currentBatch, int world, GradientNoiseScale noise, StepTimeModel times) {
        if (world < 1) {
            throw new IllegalArgumentException("world must be >= 1, got " + world);
        }
        if (currentBatch < 1) {
            throw new IllegalArgumentException("currentBatch must be >= 1, got " + currentBatch);
        }
        if (noise == null || times == null) {
            throw new IllegalArgumentException("noise and times must not be null");
        }
        double bn = noise.noiseScale();
        double current = goodput(currentBatch, world, bn, times, baseBatch);
        if (Double.isNaN(bn) || Double.isNaN(current)) {
            return new Decision(currentBatch, learningRate(currentBatch, bn), current, current, false);
        }
        int best = currentBatch;
        double bestGoodput = current;
        long first = Math.max(world, ((long) minBatch + world - 1) / world * world);
        for (long b = first; b <= maxBatch; b += world) { // long: maxBatch + world cannot overflow
            double g = goodput((int) b, world, bn, times, baseBatch);
            if (g > bestGoodput) {
                best = (int) b;
                bestGoodput = g;
            }
        }
        boolean change = best != currentBatch && bestGoodput >= current * (1 + minGain);
        int chosen = change ? best : currentBatch;
        return new Decision(chosen, learningRate(chosen, bn), current, change ? bestGoodput : current, change);
    }
}
