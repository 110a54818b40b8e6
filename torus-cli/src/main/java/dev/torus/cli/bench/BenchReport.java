package dev.torus.cli.bench;

import java.io.IOException;
import java.io.PrintStream;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The shared benchmark harness output: a fixed-width table on stdout as rows
 * arrive, and optionally a JSON-lines file (one object per row) for plotting
 * and checking. Owns the file writer; close it to flush.
 */
public final class BenchReport implements AutoCloseable {
    private final PrintStream out;
    private final Writer json;
    private final String[] columns;
    private final int[] widths;
    private final List<BenchRow> rows = new ArrayList<>();

    public BenchReport(PrintStream out, Path jsonFile, String[] columns, int[] widths) throws IOException {
        this.out = out;
        this.columns = columns.clone();
        this.widths = widths.clone();
        if (jsonFile != null) {
            Path parent = jsonFile.toAbsolutePath().getParent();
            if (parent != null) {
                Files.createDirectories(parent);
            }
            this.json = Files.newBufferedWriter(jsonFile, StandardCharsets.UTF_8);
        } else {
            this.json = null;
        }
    }

    public void header(String title) {
        out.println(title);
        StringBuilder sb = new StringBuilder("#");
        for (int i = 0; i < columns.length; i++) {
            sb.append(String.format("%" + widths[i] + "s", columns[i]));
        }
        out.println(sb);
    }

    /** A comment line on stdout (a goal's outcome, for example); not part of the JSON rows. */
    public void note(String line) {
        out.println(line);
    }

    public void add(BenchRow row) throws IOException {
        rows.add(row);
        StringBuilder sb = new StringBuilder(" ");
        for (int i = 0; i < columns.length; i++) {
            Object v = row.get(columns[i]);
            String s;
            if (v instanceof Double || v instanceof Float) {
                double d = ((Number) v).doubleValue();
                s = Math.abs(d) >= 100 ? String.format("%.1f", d) : String.format("%.3f", d);
            } else {
                s = String.valueOf(v);
            }
            sb.append(String.format("%" + widths[i] + "s", s));
        }
        out.println(sb);
        if (json != null) {
            json.write(row.toJson());
            json.write('\n');
            json.flush();
        }
    }

    public List<BenchRow> rows() {
        return rows;
    }

    @Override
    public void close() throws IOException {
        if (json != null) {
            json.close();
        }
    }
}
