package dev.torus.cli.demo;

import java.io.IOException;
import java.nio.file.Path;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.XYSeries;
import org.knowm.xchart.style.markers.SeriesMarkers;

/** Writes the demo's loss-against-step curves as a PNG (XChart, headless). */
final class LossPlot {
    private LossPlot() {}

    /** One series per (name, losses) pair; steps are 1-based. */
    static void write(Path png, String title, String[] names, float[][] losses) throws IOException {
        System.setProperty("java.awt.headless", "true");
        XYChart chart = new XYChartBuilder().width(900).height(520).title(title).xAxisTitle("step")
                .yAxisTitle("training loss").build();
        chart.getStyler().setLegendPosition(org.knowm.xchart.style.Styler.LegendPosition.InsideNE);
        for (int s = 0; s < names.length; s++) {
            double[] x = new double[losses[s].length];
            double[] y = new double[losses[s].length];
            for (int i = 0; i < x.length; i++) {
                x[i] = i + 1;
                y[i] = losses[s][i];
            }
            XYSeries series = chart.addSeries(names[s], x, y);
            series.setMarker(SeriesMarkers.NONE);
        }
        String file = png.toString();
        String base = file.endsWith(".png") ? file.substring(0, file.length() - 4) : file;
        BitmapEncoder.saveBitmap(chart, base, BitmapEncoder.BitmapFormat.PNG);
    }

    /** The loss of every step, and the world size on a second axis. */
    static void writeWithWorld(Path png, String title, float[] loss, float[] world) throws IOException {
        System.setProperty("java.awt.headless", "true");
        XYChart chart = new XYChartBuilder().width(900).height(520).title(title).xAxisTitle("step")
                .yAxisTitle("training loss").build();
        chart.getStyler().setLegendPosition(org.knowm.xchart.style.Styler.LegendPosition.InsideNE);
        double[] x = new double[loss.length];
        double[] y = new double[loss.length];
        double[] w = new double[loss.length];
        for (int i = 0; i < x.length; i++) {
            x[i] = i + 1;
            y[i] = loss[i];
            w[i] = world[i];
        }
        chart.addSeries("training loss", x, y).setMarker(SeriesMarkers.NONE);
        XYSeries ws = chart.addSeries("world size", x, w);
        ws.setMarker(SeriesMarkers.NONE);
        ws.setYAxisGroup(1);
        chart.setYAxisGroupTitle(1, "workers");
        chart.getStyler().setYAxisGroupPosition(1, org.knowm.xchart.style.Styler.YAxisPosition.Right);
        String file = png.toString();
        String base = file.endsWith(".png") ? file.substring(0, file.length() - 4) : file;
        BitmapEncoder.saveBitmap(chart, base, BitmapEncoder.BitmapFormat.PNG);
    }
}
