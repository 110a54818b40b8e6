package dev.torus.cli;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Writes timelines in the Chrome Trace Event format (JSON; Perfetto and chrome://tracing open it): one
 * process per group, one thread row per id, one complete ("X") event per slice, in microseconds from the
 * group's first slice. Slices named recv-* are in category "wait", send-* in "send", the rest "compute".
 */
public final class ChromeTrace {
    private ChromeTrace() {}

    /** One slice of a row: times from {@link System#nanoTime()}. */
    public record Slice(int row, String name, long startNanos, long endNanos) {}

    /** A group of rows: its name, optional row names, its slices. */
    public record Group(String name, Map<Integer, String> rowNames, List<Slice> slices) {}

    public static void write(Path file, List<Group> groups) throws IOException {
        StringBuilder sb = new StringBuilder("{\"traceEvents\":[");
        boolean first = true;
        for (int pid = 0; pid < groups.size(); pid++) {
            Group g = groups.get(pid);
            long origin = Long.MAX_VALUE;
            for (Slice s : g.slices()) {
                origin = Math.min(origin, s.startNanos());
            }
            sb.append(first ? "" : ",").append("{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":").append(pid)
                    .append(",\"args\":{\"name\":").append(Json.quote(g.name())).append("}}");
            first = false;
            for (Map.Entry<Integer, String> r : g.rowNames().entrySet()) {
                sb.append(",{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":").append(pid).append(",\"tid\":")
                        .append(r.getKey()).append(",\"args\":{\"name\":").append(Json.quote(r.getValue())).append("}}");
            }
            for (Slice s : g.slices()) {
                String cat = s.name().startsWith("recv") ? "wait" : s.name().startsWith("send") ? "send" : "compute";
                sb.append(",{\"name\":").append(Json.quote(s.name())).append(",\"cat\":\"").append(cat)
                        .append("\",\"ph\":\"X\",\"pid\":").append(pid).append(",\"tid\":").append(s.row())
                        .append(",\"ts\":").append(String.format(Locale.ROOT, "%.1f", (s.startNanos() - origin) / 1e3))
                        .append(",\"dur\":").append(String.format(Locale.ROOT, "%.1f",
                                (s.endNanos() - s.startNanos()) / 1e3)).append("}");
            }
        }
        sb.append("]}\n");
        Files.writeString(file, sb.toString());
    }
}
