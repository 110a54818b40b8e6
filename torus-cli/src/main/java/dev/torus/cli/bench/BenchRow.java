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
        return dev.torus.cli.Json.write(fields);
    }
}
