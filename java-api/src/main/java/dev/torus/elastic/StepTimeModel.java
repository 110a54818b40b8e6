package dev.torus.elastic;

/**
 * An online fit of the step time of data-parallel training as a function of the per-rank batch:
 * {@code T(b) = fixed + perSample · b}, where {@code b = B / W} is what one rank computes (its
 * forward and backward grow with it) and {@code fixed} is what does not (the all-reduce of a fixed
 * model, the optimizer step, the launch overheads). Pollux fits a richer model; this two-term one
 * is what one world size can identify, and is refitted per world size by its owner.
 *
 * <p>Least squares over exponentially weighted sums, so that old measurements fade
 * ({@code decay} per observation). Needs observations at two or more distinct per-rank batches
 * before it predicts; until then {@link #predict} returns NaN. Not thread-safe.
 */
public final class StepTimeModel {
    private final double decay;
    private double w;
    private double sx;
    private double sy;
    private double sxx;
    private double sxy;
    private double minX = Double.POSITIVE_INFINITY;
    private double maxX = Double.NEGATIVE_INFINITY;

    /** {@code decay} in (0, 1]: the weight the past keeps per new observation (1 = never forget). */
    public StepTimeModel(double decay) {
        if (!(decay > 0 && decay <= 1)) {
            throw new IllegalArgumentException("decay must be in (0, 1], got " + decay);
        }
        this.decay = decay;
    }

    /** One measured step: {@code perRankBatch} samples per rank took {@code seconds}. */
    public void observe(double perRankBatch, double seconds) {
        if (!(perRankBatch > 0) || Double.isInfinite(perRankBatch)) {
            throw new IllegalArgumentException("perRankBatch must be a positive number, got " + perRankBatch);
        }
        if (!(seconds > 0) || Double.isInfinite(seconds)) {
            throw new IllegalArgumentException("seconds must be a positive number, got " + seconds);
        }
        w = decay * w + 1;
        sx = decay * sx + perRankBatch;
        sy = decay * sy + seconds;
        sxx = decay * sxx + perRankBatch * perRankBatch;
        sxy = decay * sxy + perRankBatch * seconds;
        minX = Math.min(minX, perRankBatch);
        maxX = Math.max(maxX, perRankBatch);
    }

    /** The fitted {fixed seconds, seconds per sample per rank}; NaNs until two distinct batches were seen. */
    public double[] coefficients() {
        double det = w * sxx - sx * sx;
        if (w == 0 || maxX <= minX || det <= 1e-12 * w * sxx) {
            return new double[] {Double.NaN, Double.NaN};
        }
        double slope = (w * sxy - sx * sy) / det;
        double intercept = (sy - slope * sx) / w;
        // a negative part would predict negative times beyond the data: clamp, keeping the mean time
        if (slope < 0) {
            return new double[] {sy / w, 0};
        }
        if (intercept < 0) {
            return new double[] {0, sy / sx};
        }
        return new double[] {intercept, slope};
    }

    /** The predicted step time at {@code perRankBatch}; NaN until the model can predict. */
    public double predict(double perRankBatch) {
        double[] c = coefficients();
        return c[0] + c[1] * perRankBatch;
    }

    /** The fit's state (its weighted sums and the range seen), for an elastic commit. */
    public double[] state() {
        return new double[] {w, sx, sy, sxx, sxy, minX, maxX};
    }

    /** Takes back a {@link #state()}; the decay stays this model's own. */
    public void restore(double[] state) {
        if (state == null || state.length != 7) {
            throw new IllegalArgumentException("state must be the 7 values state() returns, got "
                    + (state == null ? "null" : state.length + " values"));
        }
        w = state[0];
        sx = state[1];
        sy = state[2];
        sxx = state[3];
        sxy = state[4];
        minX = state[5];
        maxX = state[6];
    }
}
