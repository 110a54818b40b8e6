package dev.torus.serve;

import java.util.ArrayDeque;
import java.util.Deque;

/**
 * Decides how many replicas a model needs from a window of load samples. Pure logic with an injected
 * clock (every method takes {@code nowNanos}), so tests drive it without sleeping; {@link ReplicaPool}
 * feeds it and carries its decisions out.
 *
 * <p>The metric is in-flight requests (queued plus executing) per replica, as in Knative's concurrency
 * target and Ray Serve's target ongoing requests. Rules (defaults in {@link Options}):
 * <ul>
 *   <li><b>Stable mode.</b> A scale-up happens as soon as the mean in-flight over the stable window exceeds
 *       {@code current x target x upTolerance} (1.1: the Kubernetes autoscaler's 10% tolerance). It goes to
 *       {@code ceil(mean x upTolerance / target)}: the same 10% as headroom, so that a load sitting on a
 *       boundary lands above it instead of crossing it again later.</li>
 *   <li><b>Panic mode.</b> When the mean over the short panic window asks for at least
 *       {@code panicThreshold} times the current count (a burst), the autoscaler scales up to the panic window's
 *       count (with the same headroom) at once, and does not scale down until a whole stable window has passed
 *       without another burst.</li>
 *   <li><b>Scale-down</b> removes one replica at a time, only after the stable window's mean has stayed below
 *       {@code (current - 1) x target x downTolerance} for {@code scaleDownDelay}. The gap between that
 *       threshold and the scale-up threshold is the hysteresis that keeps a constant load from flapping.</li>
 *   <li>Every count is clamped to {@code [min, max]}. Decisions need a full panic window of samples first, and
 *       the stable rules a full stable window: until then only panic mode scales.</li>
 * </ul>
 * Not thread-safe: one owner calls it.
 */
public final class Autoscaler {
    /** Tunables; see the class comment and docs/SERVING.md for why each default. */
    public record Options(int min, int max, double targetInFlight, long stableWindowNanos, long panicWindowNanos,
                          double panicThreshold, long scaleDownDelayNanos, double downTolerance, double upTolerance) {
        public Options {
            if (min < 0) {
                throw new IllegalArgumentException("min must be >= 0, got " + min);
            }
            if (max < Math.max(1, min)) {
                throw new IllegalArgumentException("max must be >= max(1, min) = " + Math.max(1, min) + ", got " + max);
            }
            if (!(targetInFlight > 0) || Double.isInfinite(targetInFlight)) {
                throw new IllegalArgumentException("targetInFlight must be a finite number > 0, got " + targetInFlight);
            }
            if (panicWindowNanos <= 0 || stableWindowNanos < panicWindowNanos) {
                throw new IllegalArgumentException("windows must satisfy 0 < panicWindow <= stableWindow, got panic "
                        + panicWindowNanos + " ns, stable " + stableWindowNanos + " ns");
            }
            if (!(panicThreshold >= 1)) {
                throw new IllegalArgumentException("panicThreshold must be >= 1, got " + panicThreshold);
            }
            if (scaleDownDelayNanos < 0) {
                throw new IllegalArgumentException("scaleDownDelay must be >= 0, got " + scaleDownDelayNanos + " ns");
            }
            if (!(downTolerance > 0 && downTolerance <= 1)) {
                throw new IllegalArgumentException("downTolerance must be in (0, 1], got " + downTolerance);
            }
            if (!(upTolerance >= 1 && upTolerance <= 2)) {
                throw new IllegalArgumentException("upTolerance must be in [1, 2], got " + upTolerance);
            }
        }

        /**
         * Target 2 in flight per replica, stable window 30 s, panic window 2 s at 2x, scale down after 10 s below
         * 0.8, scale up above 1.1.
         */
        public static Options defaults(int min, int max) {
            return new Options(min, max, 2.0, 30_000_000_000L, 2_000_000_000L, 2.0, 10_000_000_000L, 0.8, 1.1);
        }

        public Options withTarget(double target) {
            return new Options(min, max, target, stableWindowNanos, panicWindowNanos, panicThreshold,
                    scaleDownDelayNanos, downTolerance, upTolerance);
        }

        public Options withWindows(long stableNanos, long panicNanos, long scaleDownDelayNanos) {
            return new Options(min, max, targetInFlight, stableNanos, panicNanos, panicThreshold, scaleDownDelayNanos,
                    downTolerance, upTolerance);
        }
    }

    /** What to do now, with the inputs that led there (for the decision log). */
    public record Decision(int current, int desired, String reason, double stableMean, double panicMean,
                           boolean panic, int samples) {
        public boolean changes() {
            return desired != current;
        }

        @Override
        public String toString() {
            return String.format("replicas %d -> %d (%s): in-flight mean %.2f over stable window, %.2f over panic window, "
                    + "%d samples%s", current, desired, reason, stableMean, panicMean, samples, panic ? ", panic mode" : "");
        }
    }

    private record Sample(long at, double inFlight) {
    }

    private final Options options;
    private final Deque<Sample> samples = new ArrayDeque<>();
    private long firstSampleAt = Long.MIN_VALUE;
    private long panicUntil = Long.MIN_VALUE;
    private long lastBurst = Long.MIN_VALUE / 2;
    private long belowSince = Long.MIN_VALUE;

    public Autoscaler(Options options) {
        if (options == null) {
            throw new IllegalArgumentException("options must not be null");
        }
        this.options = options;
    }

    public Options options() {
        return options;
    }

    /** Records the in-flight request count (queued plus executing, over all replicas) seen at {@code nowNanos}. */
    public void record(long nowNanos, double inFlight) {
        if (!(inFlight >= 0) || Double.isInfinite(inFlight)) {
            throw new IllegalArgumentException("inFlight must be a finite number >= 0, got " + inFlight);
        }
        if (firstSampleAt == Long.MIN_VALUE) {
            firstSampleAt = nowNanos;
        }
        samples.addLast(new Sample(nowNanos, inFlight));
        while (!samples.isEmpty() && samples.peekFirst().at() < nowNanos - options.stableWindowNanos()) {
            samples.removeFirst();
        }
    }

    /**
     * The replica count wanted at {@code nowNanos}, given {@code current} replicas (ready or starting).
     * Scale-down moves one step at a time; scale-up may jump.
     */
    public Decision decide(long nowNanos, int current) {
        if (current < 0) {
            throw new IllegalArgumentException("current must be >= 0, got " + current);
        }
        double stable = mean(nowNanos - options.stableWindowNanos());
        double panicMean = mean(nowNanos - options.panicWindowNanos());
        int n = samples.size();
        int clampedCurrent = clamp(current);
        if (clampedCurrent != current) {
            return new Decision(current, clampedCurrent, current < options.min() ? "below min" : "above max",
                    stable, panicMean, panicUntil > nowNanos, n);
        }
        if (firstSampleAt == Long.MIN_VALUE || nowNanos - firstSampleAt < options.panicWindowNanos()) {
            return new Decision(current, current, "warming up: less than one panic window of samples", stable,
                    panicMean, false, n);
        }
        double t = options.targetInFlight();
        double up = options.upTolerance();
        int wantPanic = clamp((int) Math.ceil(panicMean * up / t));
        // the stable rule speaks only once its window is full: an early, short mean is what panic mode is for
        boolean fullWindow = nowNanos - firstSampleAt >= options.stableWindowNanos();
        int wantStable = fullWindow && stable > current * t * up ? clamp((int) Math.ceil(stable * up / t)) : current;
        // panic: a burst asks for panicThreshold x the current capacity (from zero: any load at all)
        boolean burst = current == 0 ? panicMean > 0 : panicMean / t >= options.panicThreshold() * current;
        if (burst) {
            panicUntil = nowNanos + options.stableWindowNanos();
            lastBurst = nowNanos;
        }
        boolean panic = panicUntil > nowNanos;
        // while a burst is ramping (one panic window after it) the short window keeps scaling up past the same
        // tolerance; panic mode then blocks scale-downs for a stable window
        boolean ramping = nowNanos - lastBurst < options.panicWindowNanos();
        int want = Math.max(wantStable, burst || (ramping && panicMean > current * t * up) ? wantPanic : 0);
        if (current == 0 && panicMean > 0) {
            want = Math.max(want, clamp(1));
        }
        if (want > current) {
            belowSince = Long.MIN_VALUE;
            return new Decision(current, want, want > wantStable ? "scale up: panic window" : "scale up: stable window", stable,
                    panicMean, panic, n);
        }
        if (panic) {
            belowSince = Long.MIN_VALUE;
            return new Decision(current, current, "hold: panic mode", stable, panicMean, true, n);
        }
        double downLine = (current - 1) * t * options.downTolerance();
        boolean below = current > options.min() && stable <= downLine && panicMean <= downLine;
        if (!below) {
            belowSince = Long.MIN_VALUE;
            return new Decision(current, current, "hold", stable, panicMean, false, n);
        }
        if (belowSince == Long.MIN_VALUE) {
            belowSince = nowNanos;
        }
        if (nowNanos - belowSince >= options.scaleDownDelayNanos()) {
            belowSince = Long.MIN_VALUE;
            return new Decision(current, current - 1, "scale down: below " + fmt(downLine) + " for the delay", stable,
                    panicMean, false, n);
        }
        return new Decision(current, current, "hold: below " + fmt(downLine) + ", waiting out the scale-down delay",
                stable, panicMean, false, n);
    }

    private static String fmt(double v) {
        return String.format("%.2f", v);
    }

    private int clamp(int v) {
        return Math.max(options.min(), Math.min(options.max(), v));
    }

    private double mean(long from) {
        double sum = 0;
        int k = 0;
        for (var it = samples.descendingIterator(); it.hasNext(); ) {
            Sample s = it.next();
            if (s.at() < from) {
                break;
            }
            sum += s.inFlight();
            k++;
        }
        return k == 0 ? 0 : sum / k;
    }
}
