package dev.torus.cli.demo;

import java.io.PrintStream;
import java.util.Locale;

/**
 * A one-line progress display: bar, step, loss, samples/s and ETA. On a terminal it
 * redraws in place; otherwise (logs, CI) it prints a line at every tenth of the run.
 * Thread-safe.
 */
final class ProgressBar {
    private static final int WIDTH = 30;

    private final PrintStream out;
    private String label;
    private final boolean inPlace;
    private final long startNanos = System.nanoTime();
    private int lastDecile = -1;
    private long lastDraw;

    ProgressBar(PrintStream out, String label, boolean inPlace) {
        this.out = out;
        this.label = label;
        this.inPlace = inPlace;
    }

    /** Changes the text before the bar (the elastic demo shows the world size there). */
    synchronized void setLabel(String label) {
        this.label = label;
    }

    /** Shows {@code step} of {@code total}; a step past the total (an extra step) shows a full bar. */
    synchronized void update(int step, int total, float loss, double samplesPerSecond) {
        if (step < 0 || total < 0) {
            throw new IllegalArgumentException("step and total must be >= 0, got step " + step + " of " + total);
        }
        double frac = total == 0 ? 1 : Math.min(1.0, (double) step / total);
        long now = System.nanoTime();
        double elapsed = (now - startNanos) / 1e9;
        double eta = step == 0 ? Double.NaN : elapsed / step * Math.max(0, total - step);
        int filled = (int) Math.round(frac * WIDTH);
        String bar = "=".repeat(Math.max(0, filled - 1)) + (filled > 0 && filled < WIDTH ? ">" : filled == WIDTH ? "=" : "")
                + " ".repeat(WIDTH - filled);
        String text = String.format(Locale.ROOT, "%s [%s] step %d/%d  loss %.4f  %,.0f samples/s  ETA %s", label, bar,
                step, total, loss, samplesPerSecond, Double.isNaN(eta) ? "?" : String.format(Locale.ROOT, "%.0fs", eta));
        if (inPlace) {
            if (step >= total || now - lastDraw > 100_000_000L) {
                out.print("\r" + text + (step >= total ? "\n" : ""));
                out.flush();
                lastDraw = now;
            }
        } else {
            int decile = (int) (frac * 10);
            if (decile != lastDecile) {
                lastDecile = decile;
                out.println(text);
            }
        }
    }
}
