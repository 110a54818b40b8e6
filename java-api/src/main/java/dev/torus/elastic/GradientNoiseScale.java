package dev.torus.elastic;

/**
 * An online estimate of the gradient noise scale {@code B_noise = tr(Σ) / |G|²}, where
 * {@code G} is the true gradient and {@code Σ} the per-sample gradient covariance
 * (McCandlish et al., "An Empirical Model of Large-Batch Training"; the statistic that
 * Pollux and AdaptDL adapt the batch size with).
 *
 * <p>Each step gives two unbiased pieces from gradients a data-parallel job already has:
 * the squared norm of each rank's local gradient (a small batch of {@code b} samples),
 * averaged over ranks, and the squared norm of the all-reduced gradient (the big batch
 * of {@code B} samples). With {@code E|g_b|² = |G|² + tr(Σ)/b}:
 * <pre>
 * |G|²   ≈ (B |g_B|² − b |g_b|²) / (B − b)
 * tr(Σ)  ≈ (|g_b|² − |g_B|²) / (1/b − 1/B)
 * </pre>
 * Both are smoothed with an exponential moving average before the ratio is taken (the
 * ratio of averages, not the average of ratios, which the noise in |G|² would bias).
 * Needs at least two ranks' worth of samples per step ({@code B > b}). Not thread-safe.
 */
public final class GradientNoiseScale {
    private final double decay;
    private double gradSq;
    private double trace;
    private double weight;

    /** {@code decay} in [0, 1): the weight of the past in the moving averages (0.9 is a good start). */
    public GradientNoiseScale(double decay) {
        if (!(decay >= 0 && decay < 1)) {
            throw new IllegalArgumentException("decay must be in [0, 1), got " + decay);
        }
        this.decay = decay;
    }

    /**
     * One step: {@code localSqNorm} is the mean over ranks of |local gradient|² (each over
     * {@code perRankBatch} samples), {@code globalSqNorm} the |all-reduced mean gradient|²
     * (over {@code globalBatch} samples).
     */
    public void update(double localSqNorm, double globalSqNorm, int perRankBatch, int globalBatch) {
        if (perRankBatch < 1 || globalBatch <= perRankBatch) {
            throw new IllegalArgumentException("need 1 <= perRankBatch < globalBatch, got " + perRankBatch + " and "
                    + globalBatch);
        }
        if (!(localSqNorm >= 0) || !(globalSqNorm >= 0) || Double.isInfinite(localSqNorm)
                || Double.isInfinite(globalSqNorm)) {
            throw new IllegalArgumentException("squared norms must be finite and >= 0, got " + localSqNorm + " and "
                    + globalSqNorm);
        }
        double b = perRankBatch;
        double big = globalBatch;
        double g = (big * globalSqNorm - b * localSqNorm) / (big - b);
        double s = (localSqNorm - globalSqNorm) / (1 / b - 1 / big);
        gradSq = decay * gradSq + (1 - decay) * g;
        trace = decay * trace + (1 - decay) * s;
        weight = decay * weight + (1 - decay);
    }

    /** The estimated noise scale in samples; NaN before the first update or while |G|² is not positive. */
    public double noiseScale() {
        if (weight == 0 || gradSq <= 0) {
            return Double.NaN;
        }
        return (trace / weight) / (gradSq / weight);
    }

    /**
     * Statistical efficiency of a global batch {@code m} relative to {@code m0}: the
     * progress per sample compared with the smaller batch, {@code (B_noise + m0) / (B_noise + m)}.
     */
    public double efficiency(int m, int m0) {
        double bn = noiseScale();
        if (Double.isNaN(bn)) {
            return 1.0;
        }
        return (bn + m0) / (bn + m);
    }

    /** The estimator's state {gradSq, trace, weight}, for an elastic commit (every member must hold the same). */
    public double[] state() {
        return new double[] {gradSq, trace, weight};
    }

    /** Takes back a {@link #state()}; the decay stays this estimator's own. */
    public void restore(double[] state) {
        if (state == null || state.length != 3) {
            throw new IllegalArgumentException("state must be the 3 values state() returns, got "
                    + (state == null ? "null" : state.length + " values"));
        }
        gradSq = state[0];
        trace = state[1];
        weight = state[2];
    }
}
