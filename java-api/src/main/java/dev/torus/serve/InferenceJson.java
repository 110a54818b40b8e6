package dev.torus.serve;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.StreamReadConstraints;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;

/**
 * Reads and writes the JSON of the Open Inference Protocol (KServe v2) for a model with one FP32 input
 * {@code input} of shape {@code [N, F]}, with Jackson's streaming parser (no data binding, no Java
 * serialization). {@code data} may be flat or nested row-major, as the protocol allows.
 *
 * <p>Non-finite inputs are refused: JSON has no NaN or infinity, and the parser does not accept the
 * non-standard {@code NaN} token either, so such a request fails as malformed; a number too large for
 * float32 is refused by name. Stateless and thread-safe.
 */
public final class InferenceJson {
    /** A request the router cannot run: answered with 400 and this message. */
    public static final class BadRequestException extends RuntimeException {
        public BadRequestException(String message) {
            super(message);
        }
    }

    /** A parsed inference request. */
    public record Request(String id, int rows, float[] data) {
    }

    private static final JsonFactory JSON = JsonFactory.builder()
            .streamReadConstraints(StreamReadConstraints.builder().maxNestingDepth(16).maxStringLength(1 << 16)
                    .maxNumberLength(64).build())
            .build();

    private final String inputName;
    private final int features;
    private final int maxRows;

    public InferenceJson(String inputName, int features, int maxRows) {
        this.inputName = inputName;
        this.features = features;
        this.maxRows = maxRows;
    }

    /** Parses a request body; every problem is a {@link BadRequestException} naming the field. */
    public Request parse(InputStream body) {
        try (JsonParser p = JSON.createParser(body)) {
            if (p.nextToken() != JsonToken.START_OBJECT) {
                throw bad("the body must be a JSON object with an \"inputs\" array");
            }
            String id = null;
            Request input = null;
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String field = p.currentName();
                JsonToken t = p.nextToken();
                switch (field) {
                    case "id" -> {
                        if (t != JsonToken.VALUE_STRING) {
                            throw bad("\"id\" must be a string");
                        }
                        id = p.getText();
                    }
                    case "inputs" -> {
                        if (input != null) {
                            throw bad("\"inputs\" appears twice");
                        }
                        if (t != JsonToken.START_ARRAY) {
                            throw bad("\"inputs\" must be an array of tensors");
                        }
                        int count = 0;
                        while (p.nextToken() == JsonToken.START_OBJECT) {
                            count++;
                            if (count > 1) {
                                throw bad("\"inputs\" must hold exactly one tensor named \"" + inputName + "\"");
                            }
                            input = parseTensor(p);
                        }
                        if (p.currentToken() != JsonToken.END_ARRAY) {
                            throw bad("\"inputs\" must be an array of objects");
                        }
                    }
                    default -> p.skipChildren();
                }
            }
            if (p.currentToken() != JsonToken.END_OBJECT) {
                throw bad("the body must be one JSON object");
            }
            if (p.nextToken() != null) {
                throw bad("unexpected content after the JSON object");
            }
            if (input == null) {
                throw bad("\"inputs\" is missing or empty: expected one tensor named \"" + inputName + "\"");
            }
            return new Request(id, input.rows(), input.data());
        } catch (BadRequestException e) {
            throw e;
        } catch (IOException e) {
            throw bad("malformed JSON: " + firstLine(e.getMessage()));
        }
    }

    private Request parseTensor(JsonParser p) throws IOException {
        String name = null;
        String datatype = null;
        long[] shape = null;
        float[] data = null;
        int dataCount = 0;
        int[] nested = {-1};
        while (p.nextToken() == JsonToken.FIELD_NAME) {
            String field = p.currentName();
            JsonToken t = p.nextToken();
            switch (field) {
                case "name" -> {
                    if (t != JsonToken.VALUE_STRING) {
                        throw bad("input \"name\" must be a string");
                    }
                    name = p.getText();
                }
                case "datatype" -> {
                    if (t != JsonToken.VALUE_STRING) {
                        throw bad("input \"datatype\" must be a string");
                    }
                    datatype = p.getText();
                }
                case "shape" -> shape = parseShape(p, t);
                case "data" -> {
                    if (t != JsonToken.START_ARRAY) {
                        throw bad("input \"data\" must be an array of numbers");
                    }
                    // the shape may come after the data: read up to the most a request may hold
                    data = new float[shape != null ? Math.toIntExact(shape[0] * shape[1]) : maxRows * features];
                    dataCount = readData(p, data, nested);
                }
                default -> p.skipChildren();
            }
        }
        if (name == null || !name.equals(inputName)) {
            throw bad("input \"name\" must be \"" + inputName + "\", got " + (name == null ? "none" : "\"" + name + "\""));
        }
        if (!"FP32".equals(datatype)) {
            throw bad("input \"datatype\" must be \"FP32\", got " + (datatype == null ? "none" : "\"" + datatype + "\""));
        }
        if (data == null) {
            throw bad("input \"data\" is missing");
        }
        if (shape == null) {
            throw bad("input \"shape\" is missing: expected [N, " + features + "]");
        }
        long need = shape[0] * shape[1];
        if (nested[0] >= 0 && nested[0] != shape[0]) {
            throw bad("input \"data\" holds " + nested[0] + " rows; shape " + shape[0] + "x" + shape[1] + " needs "
                    + shape[0]);
        }
        if (dataCount != need) {
            throw bad("input \"data\" holds " + dataCount + " numbers; shape " + shape[0] + "x" + shape[1] + " needs "
                    + need);
        }
        if (data.length != need) {
            data = java.util.Arrays.copyOf(data, (int) need);
        }
        return new Request(null, (int) shape[0], data);
    }

    private long[] parseShape(JsonParser p, JsonToken t) throws IOException {
        if (t != JsonToken.START_ARRAY) {
            throw bad("input \"shape\" must be an array [N, " + features + "]");
        }
        long[] s = new long[2];
        int k = 0;
        while (p.nextToken() != JsonToken.END_ARRAY) {
            if (p.currentToken() != JsonToken.VALUE_NUMBER_INT || k >= 2) {
                throw bad("input \"shape\" must be two integers [N, " + features + "]");
            }
            s[k++] = p.getLongValue();
        }
        if (k != 2) {
            throw bad("input \"shape\" must be two integers [N, " + features + "], got " + k + " dimensions");
        }
        if (s[1] != features) {
            throw bad("input \"shape\" must be [N, " + features + "]: the model takes " + features + " features, got " + s[1]);
        }
        if (s[0] < 1 || s[0] > maxRows) {
            throw bad("input \"shape\"[0] (rows) must be in [1, " + maxRows + "], got " + s[0]);
        }
        return s;
    }

    /**
     * Reads {@code data}, flat ({@code [v, v, ...]}) or nested row-major ({@code [[F values], [F values], ...]}),
     * into {@code out}; returns the count. A nested array whose rows do not all hold exactly the model's feature
     * count, or that mixes numbers and rows, is refused: a ragged body is a malformed request, not one to flatten.
     */
    private int readData(JsonParser p, float[] out, int[] nestedRowsOut) throws IOException {
        int n = 0;
        int rows = 0;
        Boolean nested = null;
        JsonToken t;
        while ((t = p.nextToken()) != JsonToken.END_ARRAY) {
            if (t == JsonToken.START_ARRAY) {
                if (Boolean.FALSE.equals(nested)) {
                    throw bad("input \"data\" mixes numbers and rows");
                }
                nested = true;
                int before = n;
                JsonToken u;
                while ((u = p.nextToken()) != JsonToken.END_ARRAY) {
                    if (u == JsonToken.START_ARRAY) {
                        throw bad("input \"data\" nests too deeply: expected [N][" + features + "] or flat");
                    }
                    n = number(p, u, out, n);
                }
                if (n - before != features) {
                    throw bad("input \"data\" row " + rows + " holds " + (n - before) + " numbers; the model takes "
                            + features);
                }
                rows++;
            } else {
                if (Boolean.TRUE.equals(nested)) {
                    throw bad("input \"data\" mixes numbers and rows");
                }
                nested = false;
                n = number(p, t, out, n);
            }
        }
        nestedRowsOut[0] = Boolean.TRUE.equals(nested) ? rows : -1;
        return n;
    }

    private int number(JsonParser p, JsonToken t, float[] out, int n) throws IOException {
        if (t != JsonToken.VALUE_NUMBER_INT && t != JsonToken.VALUE_NUMBER_FLOAT) {
            throw bad("input \"data\"[" + n + "] must be a number, got " + describe(t));
        }
        if (n >= out.length) {
            throw bad("input \"data\" holds more than the " + out.length + " numbers its shape allows");
        }
        float f = (float) p.getDoubleValue();
        if (!Float.isFinite(f)) {
            throw bad("input \"data\"[" + n + "] = " + p.getText() + " is not a finite float32");
        }
        out[n] = f;
        return n + 1;
    }

    private static String describe(JsonToken t) {
        return switch (t) {
            case VALUE_STRING -> "a string";
            case VALUE_TRUE, VALUE_FALSE -> "a boolean";
            case VALUE_NULL -> "null";
            case START_OBJECT -> "an object";
            default -> t.name();
        };
    }

    /** The response: {@code output} (FP32 [N, C]) and {@code class} (INT64 [N], the arg max of each row). */
    public byte[] response(String modelName, String id, int rows, int classes, float[] logits) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(64 + logits.length * 12);
        try (JsonGenerator g = JSON.createGenerator(out)) {
            g.writeStartObject();
            g.writeStringField("model_name", modelName);
            g.writeStringField("model_version", "1");
            if (id != null) {
                g.writeStringField("id", id);
            }
            g.writeArrayFieldStart("outputs");
            g.writeStartObject();
            g.writeStringField("name", "output");
            g.writeStringField("datatype", "FP32");
            g.writeArrayFieldStart("shape");
            g.writeNumber(rows);
            g.writeNumber(classes);
            g.writeEndArray();
            g.writeArrayFieldStart("data");
            for (float v : logits) {
                g.writeNumber(v);
            }
            g.writeEndArray();
            g.writeEndObject();
            g.writeStartObject();
            g.writeStringField("name", "class");
            g.writeStringField("datatype", "INT64");
            g.writeArrayFieldStart("shape");
            g.writeNumber(rows);
            g.writeEndArray();
            g.writeArrayFieldStart("data");
            for (int r = 0; r < rows; r++) {
                g.writeNumber(argMax(logits, r * classes, classes));
            }
            g.writeEndArray();
            g.writeEndObject();
            g.writeEndArray();
            g.writeEndObject();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out.toByteArray();
    }

    static int argMax(float[] v, int from, int n) {
        int best = 0;
        for (int i = 1; i < n; i++) {
            if (v[from + i] > v[from + best]) {
                best = i;
            }
        }
        return best;
    }

    /** {@code {"error": message}}, the protocol's error body. */
    public static byte[] error(String message) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (JsonGenerator g = JSON.createGenerator(out)) {
            g.writeStartObject();
            g.writeStringField("error", message);
            g.writeEndObject();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out.toByteArray();
    }

    /** The model metadata document ({@code GET /v2/models/{name}}). */
    public byte[] metadata(String modelName, String platform, int classes) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (JsonGenerator g = JSON.createGenerator(out)) {
            g.writeStartObject();
            g.writeStringField("name", modelName);
            g.writeArrayFieldStart("versions");
            g.writeString("1");
            g.writeEndArray();
            g.writeStringField("platform", platform);
            g.writeArrayFieldStart("inputs");
            tensorMeta(g, inputName, "FP32", features);
            g.writeEndArray();
            g.writeArrayFieldStart("outputs");
            tensorMeta(g, "output", "FP32", classes);
            tensorMeta(g, "class", "INT64", 0);
            g.writeEndArray();
            g.writeEndObject();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out.toByteArray();
    }

    private static void tensorMeta(JsonGenerator g, String name, String type, int width) throws IOException {
        g.writeStartObject();
        g.writeStringField("name", name);
        g.writeStringField("datatype", type);
        g.writeArrayFieldStart("shape");
        g.writeNumber(-1);
        if (width > 0) {
            g.writeNumber(width);
        }
        g.writeEndArray();
        g.writeEndObject();
    }

    private static BadRequestException bad(String m) {
        return new BadRequestException(m);
    }

    private static String firstLine(String m) {
        if (m == null) {
            return "unreadable";
        }
        int i = m.indexOf('\n');
        return i < 0 ? m : m.substring(0, i);
    }
}
