package dev.torus.cli.bench;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * One result row of a benchmark: ordered named fields (strings and numbers),
 * printed as a table column and written as one JSON object per line.
 */
public final class BenchRow {
    private final Map<String, Object> fields = new LinkedHashMap<>();

    public BenchRow put(String name, Object value) {
        fields.put(name, value);
        return this;
    }

    public Object get(String name) {
        return fields.get(name);
    }

    public Map<String, Object> fields() {
        return fields;
    }

    /** This row as a single-line JSON object. Strings are escaped; non-finite numbers become null. */
    public String toJson() {
        StringBuilder sb = new StringBuilder("{");
        boolean first = true;
        for (Map.Entry<String, Object> e : fields.entrySet()) {
            if (!first) {
                sb.append(',');
            }
            first = false;
            sb.append(quote(e.getKey())).append(':');
            Object v = e.getValue();
            if (v instanceof Number) {
                double d = ((Number) v).doubleValue();
                if (v instanceof Double || v instanceof Float) {
                    sb.append(Double.isFinite(d) ? String.format(java.util.Locale.ROOT, "%.6g", d) : "null");
                } else {
                    sb.append(v);
                }
            } else if (v instanceof Boolean) {
                sb.append(v);
            } else {
                sb.append(v == null ? "null" : quote(v.toString()));
            }
        }
        return sb.append('}').toString();
    }

    static String quote(String s) {
        StringBuilder sb = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') {
                sb.append('\\').append(c);
            } else if (c < 0x20) {
                sb.append(String.format("\\u%04x", (int) c));
            } else {
                sb.append(c);
            }
        }
        return sb.append('"').toString();
    }
}
