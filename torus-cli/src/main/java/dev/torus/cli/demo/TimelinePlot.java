package dev.torus.cli.demo;

import dev.torus.cli.ChromeTrace;
import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import javax.imageio.ImageIO;

/**
 * Draws a pipeline step's timeline as a PNG (Java2D, headless): one row per rank, a box per pass (F blue,
 * B green, W orange), waits for a receive in light grey, a tick per send, the time axis in milliseconds.
 */
final class TimelinePlot {
    private static final Color F = new Color(0x4C78A8);
    private static final Color B = new Color(0x54A24B);
    private static final Color W = new Color(0xF58518);
    private static final Color WAIT = new Color(0xDDDDDD);
    private static final Color SEND = new Color(0x7B4173);

    private TimelinePlot() {}

    static void write(Path png, String title, Map<Integer, String> rows, List<ChromeTrace.Slice> slices)
            throws IOException {
        System.setProperty("java.awt.headless", "true");
        int left = 190;
        int right = 30;
        int top = 50;
        int rowH = 28;
        int width = 1200;
        int height = top + rowH * Math.max(1, rows.size()) + 60;
        long t0 = Long.MAX_VALUE;
        long t1 = Long.MIN_VALUE;
        for (ChromeTrace.Slice s : slices) {
            t0 = Math.min(t0, s.startNanos());
            t1 = Math.max(t1, s.endNanos());
        }
        if (slices.isEmpty()) {
            t0 = 0;
            t1 = 1;
        }
        double span = Math.max(1, t1 - t0);
        BufferedImage img = new BufferedImage(width, height, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = img.createGraphics();
        try {
            g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
            g.setColor(Color.WHITE);
            g.fillRect(0, 0, width, height);
            g.setColor(Color.BLACK);
            g.setFont(new Font(Font.SANS_SERIF, Font.BOLD, 14));
            g.drawString(title, left, 24);
            g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 12));
            java.util.List<Integer> order = new java.util.ArrayList<>(rows.keySet());
            java.util.Collections.sort(order);
            int plotW = width - left - right;
            for (int i = 0; i < order.size(); i++) {
                int y = top + i * rowH;
                g.setColor(Color.BLACK);
                g.drawString(rows.get(order.get(i)), 8, y + rowH / 2 + 4);
                g.setColor(new Color(0xF4F4F4));
                g.fillRect(left, y + 2, plotW, rowH - 4);
            }
            // waits first, then passes over them, then send ticks
            for (int pass = 0; pass < 3; pass++) {
                for (ChromeTrace.Slice s : slices) {
                    int i = order.indexOf(s.row());
                    if (i < 0) {
                        continue;
                    }
                    String n = s.name();
                    boolean wait = n.startsWith("recv");
                    boolean send = n.startsWith("send");
                    if ((pass == 0) != wait || (pass == 2) != send) {
                        continue;
                    }
                    int x0 = left + (int) Math.round((s.startNanos() - t0) / span * plotW);
                    int x1 = left + (int) Math.round((s.endNanos() - t0) / span * plotW);
                    int y = top + i * rowH;
                    if (send) {
                        g.setColor(SEND);
                        g.setStroke(new BasicStroke(2f));
                        g.drawLine(x0, y + 3, x0, y + rowH - 3);
                        continue;
                    }
                    g.setColor(wait ? WAIT : n.startsWith("F") ? F : n.startsWith("B") ? B : W);
                    g.fillRect(x0, y + 4, Math.max(1, x1 - x0), rowH - 8);
                    if (!wait && x1 - x0 > 24) {
                        g.setColor(Color.WHITE);
                        g.drawString(n, x0 + 3, y + rowH / 2 + 4);
                    }
                }
            }
            int axisY = top + rowH * order.size() + 8;
            g.setColor(Color.BLACK);
            g.setStroke(new BasicStroke(1f));
            g.drawLine(left, axisY, left + plotW, axisY);
            double ms = span / 1e6;
            double tick = niceTick(ms / 8);
            for (double t = 0; t <= ms + 1e-9; t += tick) {
                int x = left + (int) Math.round(t / ms * plotW);
                g.drawLine(x, axisY, x, axisY + 5);
                g.drawString(String.format(java.util.Locale.ROOT, tick < 1 ? "%.1f" : "%.0f", t), x - 8, axisY + 18);
            }
            g.drawString("ms", left + plotW - 16, axisY + 34);
            int lx = left;
            for (Object[] e : new Object[][] {{"F forward", F}, {"B backward", B}, {"W weight gradient", W},
                    {"waiting to receive", WAIT}, {"send posted", SEND}}) {
                g.setColor((Color) e[1]);
                g.fillRect(lx, axisY + 26, 12, 10);
                g.setColor(Color.BLACK);
                g.drawString((String) e[0], lx + 16, axisY + 35);
                lx += 150;
            }
        } finally {
            g.dispose();
        }
        ImageIO.write(img, "png", png.toFile());
    }

    private static double niceTick(double raw) {
        double p = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 1e-6))));
        for (double m : new double[] {1, 2, 5, 10}) {
            if (m * p >= raw) {
                return m * p;
            }
        }
        return 10 * p;
    }
}
