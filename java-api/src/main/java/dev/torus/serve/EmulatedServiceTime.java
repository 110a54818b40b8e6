package dev.torus.serve;

import java.util.concurrent.locks.LockSupport;

/**
 * Wraps a model so that every batch takes at least {@code base + perRow x rows}: the real model runs, then
 * the thread parks for the rest. Parking costs no CPU, so on a small machine capacity grows with the number
 * of replicas the way it would with one device per replica. Used by {@code torus-bench serve} and tests;
 * owns (and closes) the wrapped model.
 */
public final class EmulatedServiceTime implements BatchModel {
    private final BatchModel inner;
    private final long baseNanos;
    private final long perRowNanos;
    private volatile boolean bypass;

    public EmulatedServiceTime(BatchModel inner, long baseNanos, long perRowNanos) {
        if (inner == null) {
            throw new IllegalArgumentException("inner must not be null");
        }
        if (baseNanos < 0 || perRowNanos < 0) {
            throw new IllegalArgumentException("base and perRow must be >= 0 ns, got " + baseNanos + " and " + perRowNanos);
        }
        this.inner = inner;
        this.baseNanos = baseNanos;
        this.perRowNanos = perRowNanos;
    }

    /**
     * Parses {@code BASE_MS+PER_ROW_MS} (for example {@code 5+40}: 5 ms per batch plus 40 ms per row).
     */
    public static long[] parse(String spec) {
        String s = spec == null ? "" : spec.trim();
        String[] parts = s.split("\\+");
        try {
            if (parts.length == 2) {
                double base = Double.parseDouble(parts[0]);
                double row = Double.parseDouble(parts[1]);
                if (base >= 0 && row >= 0 && Double.isFinite(base) && Double.isFinite(row)) {
                    return new long[] {(long) (base * 1e6), (long) (row * 1e6)};
                }
            }
        } catch (NumberFormatException ignored) {
            // falls through to the error below
        }
        throw new IllegalArgumentException("emulated service time must be BASE_MS+PER_ROW_MS with numbers >= 0 "
                + "(for example 5+40), got '" + spec + "'");
    }

    /** While on, batches run the real model only (for warm-up, which should not wait out emulated time). */
    public void bypass(boolean on) {
        bypass = on;
    }

    @Override
    public int inputs() {
        return inner.inputs();
    }

    @Override
    public int outputs() {
        return inner.outputs();
    }

    @Override
    public void infer(float[] x, int rows, float[] y) {
        long start = System.nanoTime();
        inner.infer(x, rows, y);
        if (bypass) {
            return;
        }
        long until = start + baseNanos + perRowNanos * rows;
        for (long left = until - System.nanoTime(); left > 0; left = until - System.nanoTime()) {
            LockSupport.parkNanos(left);
        }
    }

    @Override
    public long weightBytes() {
        return inner.weightBytes();
    }

    @Override
    public void close() {
        inner.close();
    }
}
