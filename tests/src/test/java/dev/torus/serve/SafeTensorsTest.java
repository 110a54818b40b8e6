package dev.torus.serve;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.DType;
import dev.torus.Device;
import dev.torus.tensor.Tensor;
import dev.torus.testing.BadArgument;
import dev.torus.testing.Data;
import dev.torus.testing.TorusTestBase;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The safetensors layout: round trips of every dtype, the bytes the reference writer produces, and one
 * refusal per way a file can break the format (each file crafted by hand here).
 */
class SafeTensorsTest extends TorusTestBase {
    private static final Pattern ENTRY = Pattern.compile(
            "\"([^\"]+)\":\\{\"dtype\":\"(\\w+)\",\"shape\":\\[[0-9,]*],\"data_offsets\":\\[(\\d+),(\\d+)]}");

    @TempDir
    Path dir;

    // ---- round trips ------------------------------------------------------------------

    @Test
    void everyDtypeRoundTripsWithScalarAndEmptyShapesInTheMapsOrder() throws IOException {
        long seed = Data.freshSeed();
        Random r = new Random(seed);
        long[][] shapes = {{3, 5}, {}, {0, 4}, {7}, {2, 1, 3}, {0}};
        List<String> names = new ArrayList<>();
        Map<String, byte[]> bytes = new LinkedHashMap<>();
        Map<String, DType> dtypes = new LinkedHashMap<>();
        Map<String, long[]> shapeOf = new LinkedHashMap<>();
        for (DType d : DType.values()) {
            for (int i = 0; i < shapes.length; i++) {
                String name = "t." + d.name().toLowerCase() + "." + i;
                long numel = 1;
                for (long s : shapes[i]) {
                    numel *= s;
                }
                byte[] b = new byte[(int) numel * d.byteSize()];
                r.nextBytes(b);
                names.add(name);
                bytes.put(name, b);
                dtypes.put(name, d);
                shapeOf.put(name, shapes[i]);
            }
        }
        Collections.shuffle(names, r); // mixed element sizes in the map's order
        Map<String, Tensor> tensors = new LinkedHashMap<>();
        Path file = dir.resolve("all.safetensors");
        try {
            for (String n : names) {
                tensors.put(n, Tensor.fromBytes(root, dtypes.get(n), bytes.get(n), shapeOf.get(n)));
            }
            SafeTensors.write(file, tensors, null);
        } finally {
            tensors.values().forEach(Tensor::close);
        }
        long dataBytes = bytes.values().stream().mapToLong(b -> b.length).sum();
        try (SafeTensorsFile f = SafeTensors.read(file)) {
            assertEquals(names, f.names(), "seed " + seed);
            assertTrue(f.metadata().isEmpty());
            for (String n : names) {
                assertEquals(dtypes.get(n), f.dtype(n), n);
                assertArrayEquals(shapeOf.get(n), f.shape(n), n);
                assertTrue(f.contains(n));
                try (Tensor t = f.tensor(n, root)) {
                    assertEquals(dtypes.get(n), t.dtype(), n);
                    assertArrayEquals(shapeOf.get(n), t.shape(), n);
                    assertEquals(Device.cpu(), t.device());
                    assertArrayEquals(bytes.get(n), t.toByteArray(), n + ", seed " + seed);
                }
            }
        }
        assertEquals(8 + headerLength(file) + dataBytes, Files.size(file));
    }

    @Test
    void metadataRoundTripsInItsOrder() {
        Map<String, String> metadata = new LinkedHashMap<>();
        metadata.put("zeta", "1");
        metadata.put("alpha", "");
        metadata.put("unicode \u00e9\u2713", "caf\u00e9 \ud83d\ude80");
        metadata.put("escapes", "line1\nline2\t\"quoted\" back\\slash \u0001");
        Path file = dir.resolve("meta.safetensors");
        try (Tensor t = Tensor.fromArray(root, new float[] {1f, 2f}, 2)) {
            SafeTensors.write(file, Map.of("x", t), metadata);
        }
        try (SafeTensorsFile f = SafeTensors.read(file)) {
            assertEquals(new ArrayList<>(metadata.entrySet()), new ArrayList<>(f.metadata().entrySet()));
            assertThrows(UnsupportedOperationException.class, () -> f.metadata().put("k", "v"));
            assertThrows(UnsupportedOperationException.class, () -> f.names().add("k"));
        }
    }

    @Test
    void anEmptyMapWritesAFileWithNoTensors() {
        Path file = dir.resolve("empty.safetensors");
        SafeTensors.write(file, Map.of(), Map.of());
        try (SafeTensorsFile f = SafeTensors.read(file)) {
            assertEquals(List.of(), f.names());
            assertTrue(f.metadata().isEmpty());
        }
    }

    // ---- the layout ------------------------------------------------------------------

    @Test
    void theHeaderIsPaddedToEightBytesAndEveryTensorStartsAtAMultipleOfItsElementSize() throws IOException {
        Map<String, Tensor> tensors = new LinkedHashMap<>();
        try {
            tensors.put("a", Tensor.fromBytes(root, DType.INT8, new byte[] {1, 2, 3}, 3));
            tensors.put("b", Tensor.fromBytes(root, DType.FLOAT64, new byte[16], 2));
            tensors.put("c", Tensor.fromBits(root, DType.FLOAT16, new short[] {1, 2, 3}, 3));
            tensors.put("d", Tensor.fromArray(root, new int[] {7}, 1));
            tensors.put("e", Tensor.fromBytes(root, DType.UINT8, new byte[] {9, 9, 9, 9, 9}, 5));
            SafeTensors.write(dir.resolve("mixed.safetensors"), tensors, null);
        } finally {
            tensors.values().forEach(Tensor::close);
        }
        Path file = dir.resolve("mixed.safetensors");
        long n = headerLength(file);
        assertEquals(0, n % 8, "header length " + n);
        String header = header(file);
        // the map's order in the header; the data by element size, largest first, then the map's order
        String json = "{\"a\":{\"dtype\":\"I8\",\"shape\":[3],\"data_offsets\":[26,29]},"
                + "\"b\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]},"
                + "\"c\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[20,26]},"
                + "\"d\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[16,20]},"
                + "\"e\":{\"dtype\":\"U8\",\"shape\":[5],\"data_offsets\":[29,34]}}";
        assertEquals(json + " ".repeat((int) n - json.length()), header);
        assertTrue(n - json.length() < 8);
        Map<String, Integer> sizes = Map.of("I8", 1, "U8", 1, "F16", 2, "I32", 4, "F64", 8);
        Matcher m = ENTRY.matcher(header);
        int found = 0;
        while (m.find()) {
            found++;
            assertEquals(0, (8 + n + Long.parseLong(m.group(3))) % sizes.get(m.group(2)), m.group());
        }
        assertEquals(5, found);
        try (SafeTensorsFile f = SafeTensors.read(file); Tensor c = f.tensor("c", root)) {
            assertEquals(List.of("a", "b", "c", "d", "e"), f.names());
            assertArrayEquals(new short[] {1, 2, 3}, c.toShortArray());
        }
    }

    /** The bytes the reference implementation writes for the same tensors (its own serialization tests). */
    @Test
    void writesTheReferenceLayoutByteForByte() throws IOException {
        float[] values = {0f, 1f, 2f, 3f, 4f, 5f};
        byte[] data = littleEndian(values);
        String json = "{\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],\"data_offsets\":[0,24]}}";
        assertEquals(64, json.length());
        Path a = dir.resolve("a.safetensors");
        try (Tensor t = Tensor.fromArray(root, values, 1, 2, 3)) {
            SafeTensors.write(a, Map.of("attn.0", t), null);
        }
        byte[] expected = concat(new byte[] {64, 0, 0, 0, 0, 0, 0, 0}, ascii(json), data);
        assertArrayEquals(expected, Files.readAllBytes(a));

        // a 65-byte header gets 7 spaces of padding
        String json2 = "{\"attn0\":{\"dtype\":\"F32\",\"shape\":[1,1,2,3],\"data_offsets\":[0,24]}}";
        Path b = dir.resolve("b.safetensors");
        try (Tensor t = Tensor.fromArray(root, values, 1, 1, 2, 3)) {
            SafeTensors.write(b, Map.of("attn0", t), null);
        }
        assertArrayEquals(concat(new byte[] {72, 0, 0, 0, 0, 0, 0, 0}, ascii(json2 + "       "), data),
                Files.readAllBytes(b));

        // metadata comes first; no tensors
        Path c = dir.resolve("c.safetensors");
        SafeTensors.write(c, Map.of(), Map.of("framework", "pt"));
        assertArrayEquals(concat(new byte[] {40, 0, 0, 0, 0, 0, 0, 0},
                        ascii("{\"__metadata__\":{\"framework\":\"pt\"}}     ")),
                Files.readAllBytes(c));
        Path d = dir.resolve("d.safetensors");
        SafeTensors.write(d, Map.of(), null);
        assertArrayEquals(concat(new byte[] {8, 0, 0, 0, 0, 0, 0, 0}, ascii("{}      ")), Files.readAllBytes(d));

        try (SafeTensorsFile f = SafeTensors.read(a);
             Tensor t = f.tensor("attn.0", DType.FLOAT32, new long[] {1, 2, 3}, root)) {
            assertArrayEquals(values, t.toFloatArray());
        }
        try (SafeTensorsFile f = SafeTensors.read(c)) {
            assertEquals(Map.of("framework", "pt"), f.metadata());
        }
    }

    /** Other writers: pretty-printed JSON, any field and entry order, metadata last, no padding, unaligned data. */
    @Test
    void readsHeadersAsOtherWritersLayThemOut() {
        String header = "{\n  \"b\": {\"data_offsets\": [4, 6], \"shape\": [2], \"dtype\": \"I8\"},\n"
                + "  \"a\": {\"shape\": [], \"dtype\": \"F32\", \"data_offsets\": [0, 4]},\n"
                + "  \"__metadata__\": {\"format\": \"pt\"}\n}";
        byte[] data = concat(littleEndian(new float[] {2.5f}), new byte[] {-7, 8});
        Path file = craft("other.safetensors", header, data);
        try (SafeTensorsFile f = SafeTensors.read(file); Tensor a = f.tensor("a", root); Tensor b = f.tensor("b", root)) {
            assertEquals(List.of("b", "a"), f.names());
            assertEquals(Map.of("format", "pt"), f.metadata());
            assertArrayEquals(new long[0], a.shape());
            assertArrayEquals(new float[] {2.5f}, a.toFloatArray());
            assertArrayEquals(new byte[] {-7, 8}, b.toByteArray());
        }
    }

    @Test
    void writeReplacesTheFileAtomicallyAndAnOpenReaderKeepsTheOldOne() throws IOException {
        Path file = dir.resolve("w.safetensors");
        try (Tensor t = Tensor.fromArray(root, new float[] {1f}, 1)) {
            SafeTensors.write(file, Map.of("x", t), null);
        }
        try (SafeTensorsFile old = SafeTensors.read(file)) {
            try (Tensor t = Tensor.fromArray(root, new float[] {2f, 3f}, 2)) {
                SafeTensors.write(file, Map.of("y", t), null);
            }
            try (Tensor x = old.tensor("x", root)) {
                assertArrayEquals(new float[] {1f}, x.toFloatArray());
            }
        }
        try (SafeTensorsFile f = SafeTensors.read(file); Tensor y = f.tensor("y", root)) {
            assertEquals(List.of("y"), f.names());
            assertArrayEquals(new float[] {2f, 3f}, y.toFloatArray());
        }
        try (Stream<Path> files = Files.list(dir)) {
            assertEquals(List.of(file), files.toList(), "no temporary file is left behind");
        }
    }

    @Test
    void writeRefusesBadArguments() {
        Path file = dir.resolve("bad.safetensors");
        try (Tensor t = Tensor.fromArray(root, new float[] {1f}, 1)) {
            BadArgument.assertMessage("file", () -> SafeTensors.write(null, Map.of("x", t), null));
            BadArgument.assertMessage("tensors", () -> SafeTensors.write(file, null, null));
            BadArgument.assertMessage("'__metadata__' is reserved",
                    () -> SafeTensors.write(file, Map.of("__metadata__", t), null));
            Map<String, Tensor> withNull = new LinkedHashMap<>();
            withNull.put("x", null);
            BadArgument.assertMessage("tensors['x']", () -> SafeTensors.write(file, withNull, null));
            Map<String, String> nullValue = new LinkedHashMap<>();
            nullValue.put("k", null);
            BadArgument.assertMessage("metadata['k']", () -> SafeTensors.write(file, Map.of("x", t), nullValue));
            BadArgument.assertMessage("file", () -> SafeTensors.read(null));
        }
        Tensor closed = Tensor.fromArray(root, new float[] {1f}, 1);
        closed.close();
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> SafeTensors.write(file, Map.of("gone", closed), null));
        assertTrue(e.getMessage().contains("tensors['gone'] is closed"), e.getMessage());
        assertFalse(Files.exists(file));
    }

    @Test
    void aFailedWriteIsRefusedWithThePath() {
        Path file = dir.resolve("no-such-dir").resolve("x.safetensors");
        try (Tensor t = Tensor.fromArray(root, new float[] {1f}, 1)) {
            refusedBy(file, () -> SafeTensors.write(file, Map.of("x", t), null), "cannot write");
        }
    }

    @Test
    void aClosedFileRefusesEveryUse() {
        Path file = dir.resolve("c.safetensors");
        SafeTensors.write(file, Map.of(), Map.of("k", "v"));
        SafeTensorsFile f = SafeTensors.read(file);
        f.close();
        f.close();
        assertTrue(f.isClosed());
        assertThrows(IllegalStateException.class, f::names);
        assertThrows(IllegalStateException.class, f::metadata);
        assertThrows(IllegalStateException.class, () -> f.tensor("x", root));
    }

    // ---- refusals --------------------------------------------------------------------

    @Test
    void refusesAFileShorterThanEightBytes() {
        refused(raw("short.safetensors", new byte[] {8, 0, 0, 0, 0}), "5 bytes", "shorter than the 8-byte header length");
        refused(raw("zero.safetensors", new byte[0]), "0 bytes");
    }

    @Test
    void refusesAHeaderLengthLargerThanTheFile() {
        refused(raw("long.safetensors", concat(le64(100), ascii("{}"))),
                "header length 100 runs past the end of the file (10 bytes");
    }

    @Test
    void refusesAHeaderLengthOverTheLimit() {
        refused(raw("limit.safetensors", concat(le64(100_000_001), ascii("{}      "))),
                "header length 100000001 is over the limit of 100000000 bytes");
        refused(raw("huge.safetensors", concat(le64(-1), ascii("{}      "))),
                "header length 18446744073709551615 is over the limit");
    }

    @Test
    void refusesAHeaderThatIsNotValidJson() {
        refused(craft("cut.safetensors", "{\"a\":{\"dtype\":\"F32\",", new byte[0]), "the header is not valid JSON");
        refused(craft("junk.safetensors", "{} x", new byte[0]), "the header is not valid JSON");
        refused(craft("two.safetensors", "{}{}", new byte[0]), "the header has an object after its JSON object");
        refused(craft("quote.safetensors", "{'a':1}", new byte[0]), "the header is not valid JSON");
        byte[] notUtf8 = {'{', '"', (byte) 0xff, '"', ':', '1', '}'};
        refused(raw("utf8.safetensors", concat(le64(notUtf8.length), notUtf8)), "the header is not valid UTF-8");
    }

    @Test
    void refusesAHeaderThatIsNotAnObject() {
        refused(craft("array.safetensors", "[1, 2]", new byte[0]), "the header is not a JSON object", "an array");
        refused(craft("string.safetensors", "\"x\"", new byte[0]), "the header is not a JSON object");
        refused(craft("nothing.safetensors", "", new byte[0]), "the header is not a JSON object: it is empty");
        refused(craft("spaces.safetensors", "        ", new byte[0]), "it is empty");
    }

    @Test
    void refusesAnEntryMissingDtypeShapeOrDataOffsets() {
        refused(craft("nodtype.safetensors", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", new byte[4]),
                "tensor 'w': the entry has no 'dtype'");
        refused(craft("noshape.safetensors", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", new byte[4]),
                "tensor 'w': the entry has no 'shape'");
        refused(craft("nooffsets.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", new byte[4]),
                "tensor 'w': the entry has no 'data_offsets'");
    }

    @Test
    void refusesAnEntryWithFieldsOfTheWrongType() {
        refused(craft("num.safetensors", "{\"w\":3}", new byte[0]),
                "tensor 'w': expected an object with dtype, shape and data_offsets, got 3");
        refused(craft("dtype.safetensors", entry("w", "5", "[1]", "[0,4]").replace("\"5\"", "5"), new byte[4]),
                "tensor 'w': dtype must be a string, got 5");
        refused(craft("shape.safetensors", entry("w", "F32", "\"1\"", "[0,4]"), new byte[4]),
                "tensor 'w': shape must be an array of non-negative integers, got the string \"1\"");
        refused(craft("fshape.safetensors", entry("w", "F32", "[1.0]", "[0,4]"), new byte[4]),
                "tensor 'w': shape must be an array of non-negative integers, got 1.0 in it");
        refused(craft("noff.safetensors", entry("w", "F32", "[1]", "[0]"), new byte[4]),
                "tensor 'w': data_offsets must be an array of 2 non-negative integers, got 1 values");
        refused(craft("soff.safetensors", entry("w", "F32", "[1]", "[0,\"4\"]"), new byte[4]),
                "data_offsets must be an array of 2 non-negative integers, got the string \"4\" in it");
        refused(craft("nulloff.safetensors", entry("w", "F32", "[1]", "null"), new byte[4]),
                "data_offsets must be an array of 2 non-negative integers, got null");
        refused(craft("extra.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}",
                new byte[4]), "tensor 'w': unexpected field 'x'");
        refused(craft("twice.safetensors",
                "{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", new byte[4]),
                "tensor 'w': field 'dtype' appears twice");
        refused(craft("metaobj.safetensors", "{\"__metadata__\":[\"a\"]}", new byte[0]),
                "'__metadata__' must be an object of strings, got an array");
        refused(craft("metaval.safetensors", "{\"__metadata__\":{\"epochs\":3}}", new byte[0]),
                "'__metadata__': the value of 'epochs' must be a string, got 3");
    }

    @Test
    void refusesANameGivenTwice() {
        String w = "\"w\":{\"dtype\":\"I8\",\"shape\":[1],\"data_offsets\":[0,1]}";
        refused(craft("dup.safetensors", "{" + w + "," + w + "}", new byte[1]), "tensor 'w' appears twice");
        refused(craft("dupmeta.safetensors", "{\"__metadata__\":{},\"__metadata__\":{}}", new byte[0]),
                "'__metadata__' appears twice");
    }

    @Test
    void refusesAnUnknownDtype() {
        for (String d : new String[] {"U16", "BOOL", "F8_E4M3", "f32", ""}) {
            refused(craft("dtype-" + d + ".safetensors", entry("w", d, "[1]", "[0,2]"), new byte[2]),
                    "tensor 'w': dtype '" + d + "' is not supported (expected one of "
                            + "F32, F16, BF16, F64, I8, U8, I32, I64)");
        }
    }

    @Test
    void refusesANegativeShapeDimension() {
        refused(craft("neg.safetensors", entry("w", "F32", "[2,-3]", "[0,24]"), new byte[24]),
                "tensor 'w': shape has a negative dimension, -3");
    }

    @Test
    void refusesAnElementCountThatOverflows() {
        refused(craft("numel.safetensors", entry("w", "I8", "[4294967296,4294967296]", "[0,0]"), new byte[0]),
                "tensor 'w': the byte size of INT8 (I8) [4294967296, 4294967296] overflows");
        refused(craft("bytes.safetensors", entry("w", "F64", "[2305843009213693952]", "[0,0]"), new byte[0]),
                "tensor 'w': the byte size of FLOAT64 (F64) [2305843009213693952] overflows");
        refused(craft("big.safetensors", entry("w", "I8", "[18446744073709551616]", "[0,0]"), new byte[0]),
                "tensor 'w': shape has dimension 18446744073709551616, too large");
    }

    @Test
    void refusesDataOffsetsThatBeginAfterTheyEnd() {
        refused(craft("order.safetensors", entry("w", "F32", "[1]", "[8,4]"), new byte[8]),
                "tensor 'w': data_offsets [8, 4] begin after they end");
    }

    @Test
    void refusesDataOffsetsWhoseLengthDiffersFromTheShape() {
        refused(craft("len.safetensors", entry("w", "F32", "[2]", "[0,12]"), new byte[12]),
                "tensor 'w': data_offsets [0, 12] hold 12 bytes, but FLOAT32 (F32) [2] takes 8");
        refused(craft("neglen.safetensors", entry("w", "F32", "[2]", "[0,-8]"), new byte[8]),
                "tensor 'w': data_offsets has a negative offset, -8");
    }

    @Test
    void refusesOverlappingDataOffsets() {
        String header = "{" + entryBody("a", "F32", "[2]", "[0,8]") + "," + entryBody("b", "F32", "[2]", "[4,12]") + "}";
        refused(craft("overlap.safetensors", header, new byte[12]), "tensors 'a' [0, 8] and 'b' [4, 12] overlap");
        // an empty tensor inside another one's bytes overlaps too (the reference reader refuses it as well)
        String inside = "{" + entryBody("a", "F32", "[2]", "[0,8]") + "," + entryBody("e", "F32", "[0]", "[4,4]") + "}";
        refused(craft("inside.safetensors", inside, new byte[8]), "tensors 'a' [0, 8] and 'e' [4, 4] overlap");
    }

    @Test
    void refusesGapsBetweenTensors() {
        String header = "{" + entryBody("a", "F32", "[1]", "[0,4]") + "," + entryBody("b", "F32", "[1]", "[8,12]") + "}";
        refused(craft("gap.safetensors", header, new byte[12]),
                "no tensor covers data bytes [4, 8) between 'a' and 'b'; tensors must lie back to back from offset 0");
        refused(craft("lead.safetensors", entry("w", "F32", "[1]", "[4,8]"), new byte[8]),
                "no tensor covers data bytes [0, 4) before 'w'");
    }

    @Test
    void refusesDataOffsetsOutsideTheBuffer() {
        refused(craft("outside.safetensors", entry("w", "F32", "[1024]", "[0,4096]"), new byte[16]),
                "tensor 'w' has data_offsets [0, 4096], outside the 16-byte data buffer");
    }

    @Test
    void refusesATruncatedFile() throws IOException {
        Path file = dir.resolve("trunc.safetensors");
        try (Tensor a = Tensor.fromArray(root, new float[16], 4, 4); Tensor b = Tensor.fromArray(root, new float[4], 4)) {
            Map<String, Tensor> m = new LinkedHashMap<>();
            m.put("a", a);
            m.put("b", b);
            SafeTensors.write(file, m, null);
        }
        long size = Files.size(file);
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
            ch.truncate(size - 3);
        }
        refused(file, "tensor 'b' has data_offsets [64, 80], outside the 77-byte data buffer: the file is truncated ("
                + (size - 3) + " bytes; the header describes " + size + ")");
    }

    @Test
    void refusesBytesAfterTheLastTensor() {
        refused(craft("trailing.safetensors", entry("w", "F32", "[1]", "[0,4]"), new byte[7]),
                "3 bytes follow the last tensor's data (the header describes 4 data bytes, the file holds 7)");
    }

    @Test
    void aMissingTensorIsRefusedWithTheNamesPresent() {
        Path file = dir.resolve("names.safetensors");
        try (Tensor a = Tensor.fromArray(root, new float[] {1f}, 1);
             Tensor b = Tensor.fromArray(root, new float[] {2f}, 1)) {
            Map<String, Tensor> m = new LinkedHashMap<>();
            m.put("alpha", a);
            m.put("beta", b);
            SafeTensors.write(file, m, null);
        }
        try (SafeTensorsFile f = SafeTensors.read(file)) {
            String expected = "no tensor 'gamma'; the file has 2: [alpha, beta]";
            refusedBy(file, () -> f.tensor("gamma", root), expected);
            refusedBy(file, () -> f.dtype("gamma"), expected);
            refusedBy(file, () -> f.shape("gamma"), expected);
            assertFalse(f.contains("gamma"));
        }
        Path many = dir.resolve("many.safetensors");
        List<Tensor> open = new ArrayList<>();
        try {
            Map<String, Tensor> m = new LinkedHashMap<>();
            for (int i = 0; i < 40; i++) {
                Tensor t = Tensor.fromArray(root, new float[] {i}, 1);
                open.add(t);
                m.put("t" + i, t);
            }
            SafeTensors.write(many, m, null);
        } finally {
            open.forEach(Tensor::close);
        }
        try (SafeTensorsFile f = SafeTensors.read(many)) {
            refusedBy(many, () -> f.tensor("x", root), "no tensor 'x'; the file has 40: [t0, t1,", "t31, ...]");
        }
    }

    @Test
    void aTensorOfAnotherDtypeOrShapeThanExpectedIsRefused() {
        Path file = dir.resolve("expect.safetensors");
        try (Tensor w = Tensor.fromArray(root, new float[6], 2, 3)) {
            SafeTensors.write(file, Map.of("w", w), null);
        }
        try (SafeTensorsFile f = SafeTensors.read(file)) {
            refusedBy(file, () -> f.tensor("w", DType.INT8, new long[] {2, 3}, root),
                    "tensor 'w': expected INT8 (I8) [2, 3], the file has FLOAT32 (F32) [2, 3]");
            refusedBy(file, () -> f.tensor("w", DType.FLOAT32, new long[] {3, 2}, root),
                    "tensor 'w': expected FLOAT32 (F32) [3, 2], the file has FLOAT32 (F32) [2, 3]");
            BadArgument.assertMessage("expectedShape", () -> f.tensor("w", DType.FLOAT32, null, root));
            BadArgument.assertMessage("allocator", () -> f.tensor("w", null));
            try (Tensor ok = f.tensor("w", DType.FLOAT32, new long[] {2, 3}, root)) {
                assertArrayEquals(new float[6], ok.toFloatArray());
            }
        }
    }

    @Test
    void aMissingFileIsRefusedWithItsPath() {
        refused(dir.resolve("absent.safetensors"), "no such file");
        refused(dir, "not a regular file");
    }

    // ---- helpers ---------------------------------------------------------------------

    private static String entryBody(String name, String dtype, String shape, String offsets) {
        return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":" + offsets + "}";
    }

    private static String entry(String name, String dtype, String shape, String offsets) {
        return "{" + entryBody(name, dtype, shape, offsets) + "}";
    }

    /** A file of the 8-byte length of {@code header}, {@code header} and {@code data}. */
    private Path craft(String name, String header, byte[] data) {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        return raw(name, concat(le64(h.length), h, data));
    }

    private Path raw(String name, byte[] bytes) {
        try {
            return Files.write(dir.resolve(name), bytes);
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }

    /** Opening {@code file} is refused with a message that starts with its path and contains every part. */
    private static void refused(Path file, String... parts) {
        refusedBy(file, () -> {
            try (SafeTensorsFile f = SafeTensors.read(file)) {
                throw new AssertionError("opened " + f);
            }
        }, parts);
    }

    private static void refusedBy(Path file, org.junit.jupiter.api.function.Executable call, String... parts) {
        ModelFileException e = assertThrows(ModelFileException.class, call);
        String m = e.getMessage();
        assertTrue(m.startsWith(file + ": "), "message '" + m + "' must start with the file");
        assertEquals(file, e.file());
        for (String p : parts) {
            assertTrue(m.contains(p), "message '" + m + "' must mention '" + p + "'");
        }
    }

    private static long headerLength(Path file) throws IOException {
        try (FileChannel ch = FileChannel.open(file)) {
            ByteBuffer b = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            ch.read(b, 0);
            return b.flip().getLong();
        }
    }

    private static String header(Path file) throws IOException {
        byte[] all = Files.readAllBytes(file);
        return new String(all, 8, (int) headerLength(file), StandardCharsets.UTF_8);
    }

    private static byte[] le64(long v) {
        return ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(v).array();
    }

    private static byte[] littleEndian(float[] v) {
        ByteBuffer b = ByteBuffer.allocate(v.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (float x : v) {
            b.putFloat(x);
        }
        return b.array();
    }

    private static byte[] ascii(String s) {
        return s.getBytes(StandardCharsets.US_ASCII);
    }

    private static byte[] concat(byte[]... parts) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (byte[] p : parts) {
            out.writeBytes(p);
        }
        return out.toByteArray();
    }
}
