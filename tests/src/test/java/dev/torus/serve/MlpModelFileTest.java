package dev.torus.serve;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.DType;
import dev.torus.Device;
import dev.torus.nn.Mlp;
import dev.torus.nn.Parameter;
import dev.torus.quant.QuantSpec;
import dev.torus.quant.QuantizedTensor;
import dev.torus.quant.Quantizer;
import dev.torus.tensor.Tensor;
import dev.torus.testing.BadArgument;
import dev.torus.testing.Data;
import dev.torus.testing.TorusTestBase;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * {@code Mlp} parameters as a torus-mlp safetensors file: bitwise round trips, the names and metadata, the int8
 * weight-only file (sizes, values equal to {@code Quantizer}'s), and the refusals.
 */
class MlpModelFileTest extends TorusTestBase {
    @TempDir
    Path dir;

    /** An Mlp whose every parameter holds fresh random values (not the constant LayerNorm/bias initialisation). */
    private Mlp randomMlp(int inputs, int width, int blocks, int classes, float dropout, boolean residual, long seed) {
        Mlp mlp = new Mlp(inputs, width, blocks, classes, dropout, residual, Device.cpu(), root, seed);
        Random r = new Random(seed);
        for (Parameter p : mlp.parameters()) {
            try (Tensor v = Tensor.fromArray(root, Data.mixed(r, (int) p.numel()), p.value().shape())) {
                p.value().copyFrom(v);
            }
        }
        return mlp;
    }

    private static byte[] bytes(Parameter p) {
        return p.value().toByteArray();
    }

    private static List<String> expectedNames(int blocks) {
        List<String> names = new ArrayList<>();
        for (int b = 0; b < blocks; b++) {
            names.add("blocks." + b + ".linear.weight");
            names.add("blocks." + b + ".norm.weight");
            names.add("blocks." + b + ".norm.bias");
            names.add("blocks." + b + ".gelu.bias");
        }
        names.add("head.weight");
        names.add("head.bias");
        return names;
    }

    @ParameterizedTest(name = "inputs {0}, residual {1}")
    @CsvSource({"6, false", "6, true", "8, true"})
    void saveThenLoadIntoAnotherModelCopiesEveryParameterBitwise(int inputs, boolean residual) {
        long seed = Data.freshSeed();
        Path file = dir.resolve("mlp.safetensors");
        try (Mlp a = randomMlp(inputs, 8, 3, 4, 0.1f, residual, seed);
             Mlp b = new Mlp(inputs, 8, 3, 4, 0f, residual, Device.cpu(), root, seed + 1)) {
            MlpModelFile.save(a, file, Map.of("run", "r1"));
            List<Parameter> pa = a.parameters();
            List<Parameter> pb = b.parameters();
            for (int i = 0; i < pa.size(); i++) {
                assertFalse(Arrays.equals(bytes(pa.get(i)), bytes(pb.get(i))), pa.get(i).toString());
            }
            try (SafeTensorsFile f = SafeTensors.read(file)) {
                assertEquals(new MlpSpec(inputs, 8, 3, 4, residual, 1e-5f, false), MlpModelFile.spec(f));
                MlpModelFile.loadInto(f, b);
            }
            for (int i = 0; i < pa.size(); i++) {
                assertArrayEquals(bytes(pa.get(i)), bytes(pb.get(i)), pa.get(i) + ", seed " + seed);
            }
        }
    }

    @Test
    void theFileUsesThePyTorchNamesShapesAndTheModelsMetadata() {
        Path file = dir.resolve("layout.safetensors");
        try (Mlp mlp = randomMlp(6, 8, 2, 4, 0f, true, 5)) {
            Map<String, String> extra = new LinkedHashMap<>();
            extra.put("run", "r7");
            extra.put("step", "120");
            MlpModelFile.save(mlp, file, extra);
            try (SafeTensorsFile f = SafeTensors.read(file)) {
                assertEquals(expectedNames(2), f.names());
                assertArrayEquals(new long[] {8, 6}, f.shape("blocks.0.linear.weight"));
                assertArrayEquals(new long[] {8, 8}, f.shape("blocks.1.linear.weight"));
                for (String n : List.of("blocks.0.norm.weight", "blocks.0.norm.bias", "blocks.1.gelu.bias")) {
                    assertArrayEquals(new long[] {8}, f.shape(n), n);
                }
                assertArrayEquals(new long[] {4, 8}, f.shape("head.weight"));
                assertArrayEquals(new long[] {4}, f.shape("head.bias"));
                for (String n : f.names()) {
                    assertEquals(DType.FLOAT32, f.dtype(n), n);
                }
                Map<String, String> expected = new LinkedHashMap<>();
                expected.put("format", "torus-mlp");
                expected.put("dtype", "fp32");
                expected.put("inputs", "6");
                expected.put("width", "8");
                expected.put("blocks", "2");
                expected.put("classes", "4");
                expected.put("residual", "true");
                expected.put("norm_eps", "1.0E-5");
                expected.put("run", "r7");
                expected.put("step", "120");
                assertEquals(new ArrayList<>(expected.entrySet()), new ArrayList<>(f.metadata().entrySet()));
                // block 1 (residual) holds parameters 4..7, its LayerNorm gamma is parameter 5; weights are [out, in]
                try (Tensor g = f.tensor("blocks.1.norm.weight", root);
                     Tensor w = f.tensor("blocks.0.linear.weight", root)) {
                    List<Parameter> ps = mlp.parameters();
                    assertArrayEquals(bytes(ps.get(5)), g.toByteArray());
                    assertArrayEquals(bytes(ps.get(0)), w.toByteArray());
                }
            }
        }
    }

    @Test
    void int8WeightsTakeAQuarterOfTheBytesPlusOneScalePerRow() throws Exception {
        Path fp32 = dir.resolve("fp32.safetensors");
        Path int8 = dir.resolve("int8.safetensors");
        try (Mlp mlp = randomMlp(128, 128, 2, 10, 0f, false, Data.freshSeed())) {
            MlpModelFile.save(mlp, fp32, null);
        }
        MlpModelFile.quantize(fp32, int8);
        try (SafeTensorsFile f = SafeTensors.read(fp32); SafeTensorsFile q = SafeTensors.read(int8)) {
            long fp32Weights = 0;
            long int8Weights = 0;
            for (String n : f.names()) {
                boolean weight = n.endsWith(".linear.weight") || n.equals("head.weight");
                if (weight) {
                    fp32Weights += bytes(f, n);
                    assertEquals(DType.INT8, q.dtype(n), n);
                    assertArrayEquals(f.shape(n), q.shape(n), n);
                    assertEquals(DType.FLOAT32, q.dtype(n + "_scale"), n);
                    assertArrayEquals(new long[] {f.shape(n)[0]}, q.shape(n + "_scale"), n);
                    int8Weights += bytes(q, n) + bytes(q, n + "_scale");
                } else {
                    assertEquals(DType.FLOAT32, q.dtype(n), n);
                    assertArrayEquals(f.shape(n), q.shape(n), n);
                }
            }
            // weights [128,128], [128,128], [10,128]: 34048 elements; scales for 128 + 128 + 10 rows
            assertEquals(34048L * 4, fp32Weights);
            assertEquals(34048L + (128 + 128 + 10) * 4, int8Weights);
            assertTrue(int8Weights <= 0.26 * fp32Weights, int8Weights + " of " + fp32Weights);
            assertEquals(f.names().size() + 3, q.names().size());
        }
        assertTrue(Files.size(int8) < 0.3 * Files.size(fp32), Files.size(int8) + " of " + Files.size(fp32));
    }

    @Test
    void int8WeightsAreQuantizersPerChannelOutputAndTheRestIsUnchanged() {
        Path fp32 = dir.resolve("fp32.safetensors");
        Path int8 = dir.resolve("int8.safetensors");
        try (Mlp mlp = randomMlp(6, 16, 2, 5, 0f, true, Data.freshSeed())) {
            MlpModelFile.save(mlp, fp32, Map.of("run", "q1"));
        }
        MlpModelFile.quantize(fp32, int8);
        try (SafeTensorsFile f = SafeTensors.read(fp32); SafeTensorsFile q = SafeTensors.read(int8)) {
            Map<String, String> meta = new LinkedHashMap<>(f.metadata());
            meta.put("dtype", "int8-weight-only");
            assertEquals(new ArrayList<>(meta.entrySet()), new ArrayList<>(q.metadata().entrySet()));
            assertEquals(new MlpSpec(6, 16, 2, 5, true, 1e-5f, true), MlpModelFile.spec(q));
            for (String n : f.names()) {
                try (Tensor w = f.tensor(n, root)) {
                    if (n.endsWith(".linear.weight") || n.equals("head.weight")) {
                        try (QuantizedTensor expected = Quantizer.quantize(w, QuantSpec.int8Symmetric().perChannel(0));
                             Tensor values = q.tensor(n, root); Tensor scales = q.tensor(n + "_scale", root)) {
                            assertArrayEquals(expected.values().toByteArray(), values.toByteArray(), n);
                            assertArrayEquals(expected.scales().toByteArray(), scales.toByteArray(), n);
                            checkSymmetricRows(n, w.toFloatArray(), values.toByteArray(), scales.toFloatArray());
                        }
                    } else {
                        try (Tensor same = q.tensor(n, root)) {
                            assertArrayEquals(w.toByteArray(), same.toByteArray(), n);
                        }
                    }
                }
            }
        }
    }

    /** Scalar reference: scale = row absmax / 127 and |w - q * scale| <= scale / 2 (plus rounding). */
    private static void checkSymmetricRows(String name, float[] w, byte[] q, float[] scales) {
        int rows = scales.length;
        int cols = w.length / rows;
        for (int r = 0; r < rows; r++) {
            float absmax = 0;
            for (int c = 0; c < cols; c++) {
                absmax = Math.max(absmax, Math.abs(w[r * cols + c]));
            }
            assertEquals(absmax / 127, scales[r], absmax * 1e-6f, name + " row " + r);
            for (int c = 0; c < cols; c++) {
                float back = q[r * cols + c] * scales[r];
                assertTrue(Math.abs(back - w[r * cols + c]) <= scales[r] * 0.5f * 1.0001f + 1e-30f,
                        name + "[" + r + ", " + c + "]: " + w[r * cols + c] + " came back as " + back);
            }
        }
    }

    @Test
    void loadIntoDequantizesAnInt8File() {
        Path fp32 = dir.resolve("fp32.safetensors");
        Path int8 = dir.resolve("int8.safetensors");
        long seed = Data.freshSeed();
        try (Mlp a = randomMlp(6, 8, 2, 3, 0f, false, seed); Mlp b = new Mlp(6, 8, 2, 3, 0f, false, Device.cpu(), root, 1)) {
            MlpModelFile.save(a, fp32, null);
            MlpModelFile.quantize(fp32, int8);
            try (SafeTensorsFile q = SafeTensors.read(int8)) {
                MlpModelFile.loadInto(q, b);
            }
            List<String> names = expectedNames(2);
            for (int i = 0; i < names.size(); i++) {
                Parameter pa = a.parameters().get(i);
                Parameter pb = b.parameters().get(i);
                String n = names.get(i);
                if (n.endsWith("weight") && !n.contains("norm")) {
                    try (QuantizedTensor qt = Quantizer.quantize(pa.value(), QuantSpec.int8Symmetric().perChannel(0));
                         Tensor back = Quantizer.dequantize(qt, DType.FLOAT32)) {
                        assertArrayEquals(back.toByteArray(), bytes(pb), n + ", seed " + seed);
                    }
                } else {
                    assertArrayEquals(bytes(pa), bytes(pb), n + ", seed " + seed);
                }
            }
        }
    }

    // ---- refusals --------------------------------------------------------------------

    @Test
    void quantizeRefusesAFileThatIsAlreadyInt8() {
        Path fp32 = dir.resolve("fp32.safetensors");
        Path int8 = dir.resolve("int8.safetensors");
        try (Mlp mlp = randomMlp(4, 8, 1, 2, 0f, false, 3)) {
            MlpModelFile.save(mlp, fp32, null);
        }
        MlpModelFile.quantize(fp32, int8);
        refused(int8, () -> MlpModelFile.quantize(int8, dir.resolve("again.safetensors")),
                "is already int8-weight-only; quantize needs an fp32 torus-mlp file");
        assertTrue(Files.notExists(dir.resolve("again.safetensors")));
    }

    @Test
    void quantizeRefusesAFileThatIsNotATorusMlp() {
        Path plain = dir.resolve("plain.safetensors");
        Path other = dir.resolve("other.safetensors");
        try (Tensor t = Tensor.fromArray(root, new float[] {1f, 2f}, 2)) {
            SafeTensors.write(plain, Map.of("head.weight", t), null);
            SafeTensors.write(other, Map.of("head.weight", t), Map.of("format", "pt"));
        }
        Path out = dir.resolve("out.safetensors");
        refused(plain, () -> MlpModelFile.quantize(plain, out), "not a torus-mlp file: its metadata has no 'format' key");
        refused(other, () -> MlpModelFile.quantize(other, out),
                "not a torus-mlp file: metadata 'format' is 'pt', expected 'torus-mlp'");
        BadArgument.assertMessage("in", () -> MlpModelFile.quantize(null, out));
        BadArgument.assertMessage("out", () -> MlpModelFile.quantize(plain, null));
    }

    @Test
    void loadIntoRefusesAModelOfAnotherArchitectureAndLeavesItUnchanged() {
        Path file = dir.resolve("mlp.safetensors");
        try (Mlp a = randomMlp(6, 8, 2, 4, 0f, false, 3);
             Mlp wider = new Mlp(6, 16, 2, 4, 0f, false, Device.cpu(), root, 4);
             Mlp residual = new Mlp(6, 8, 2, 4, 0f, true, Device.cpu(), root, 4)) {
            MlpModelFile.save(a, file, null);
            byte[] before = bytes(wider.parameters().get(0));
            try (SafeTensorsFile f = SafeTensors.read(file)) {
                refused(file, () -> MlpModelFile.loadInto(f, wider),
                        "holds a different torus-mlp than the model: width 8 in the file, 16 in the model");
                refused(file, () -> MlpModelFile.loadInto(f, residual), "residual false in the file, true in the model");
            }
            assertArrayEquals(before, bytes(wider.parameters().get(0)));
        }
    }

    @Test
    void loadIntoRefusesATensorOfTheWrongShapeAMissingOneOrAnExtraOne() {
        Path good = dir.resolve("good.safetensors");
        try (Mlp a = randomMlp(6, 8, 2, 4, 0f, false, 3); Mlp b = new Mlp(6, 8, 2, 4, 0f, false, Device.cpu(), root, 4)) {
            MlpModelFile.save(a, good, null);
            byte[] before = bytes(b.parameters().get(0));
            Path shape = rewrite(good, "shape.safetensors", m -> {
                m.get("blocks.1.gelu.bias").close();
                m.put("blocks.1.gelu.bias", Tensor.fromArray(root, new float[9], 9));
            });
            try (SafeTensorsFile f = SafeTensors.read(shape)) {
                refused(shape, () -> MlpModelFile.loadInto(f, b),
                        "tensor 'blocks.1.gelu.bias': expected FLOAT32 (F32) [8], the file has FLOAT32 (F32) [9]");
            }
            Path missing = rewrite(good, "missing.safetensors", m -> m.remove("head.bias").close());
            try (SafeTensorsFile f = SafeTensors.read(missing)) {
                refused(missing, () -> MlpModelFile.loadInto(f, b), "missing tensors [head.bias]");
            }
            Path extra = rewrite(good, "extra.safetensors",
                    m -> m.put("head.extra", Tensor.fromArray(root, new float[1], 1)));
            try (SafeTensorsFile f = SafeTensors.read(extra)) {
                refused(extra, () -> MlpModelFile.loadInto(f, b), "unexpected tensors [head.extra]");
            }
            assertArrayEquals(before, bytes(b.parameters().get(0)), "a refused load changes nothing");
        }
    }

    @Test
    void specRefusesMissingOrBadMetadata() {
        Path good = dir.resolve("good.safetensors");
        try (Mlp a = randomMlp(6, 8, 1, 4, 0f, false, 3)) {
            MlpModelFile.save(a, good, null);
        }
        String[][] cases = {
            {"width", null, "metadata has no 'width' key, which a torus-mlp file needs"},
            {"width", "wide", "metadata 'width' is 'wide', expected a positive integer"},
            {"inputs", "0", "metadata 'inputs' is '0', expected a positive integer"},
            {"classes", "-3", "metadata 'classes' is '-3', expected a positive integer"},
            {"blocks", "99999999999", "metadata 'blocks' is '99999999999', expected a positive integer"},
            {"residual", "yes", "metadata 'residual' is 'yes', expected 'true' or 'false'"},
            {"norm_eps", "tiny", "metadata 'norm_eps' is 'tiny', expected a positive finite number"},
            {"norm_eps", "0", "metadata 'norm_eps' is '0', expected a positive finite number"},
            {"norm_eps", "Infinity", "metadata 'norm_eps' is 'Infinity', expected a positive finite number"},
            {"dtype", "fp16", "metadata 'dtype' is 'fp16', expected 'fp32' or 'int8-weight-only'"},
        };
        for (String[] c : cases) {
            Path bad = dir.resolve("bad-" + c[0] + ".safetensors");
            try (SafeTensorsFile f = SafeTensors.read(good)) {
                Map<String, String> meta = new LinkedHashMap<>(f.metadata());
                if (c[1] == null) {
                    meta.remove(c[0]);
                } else {
                    meta.put(c[0], c[1]);
                }
                copy(f, bad, meta, m -> { });
            }
            try (SafeTensorsFile f = SafeTensors.read(bad)) {
                refused(bad, () -> MlpModelFile.spec(f), c[2]);
            }
        }
    }

    @Test
    void saveRefusesAReservedExtraKey() {
        try (Mlp a = randomMlp(6, 8, 1, 4, 0f, false, 3)) {
            Path file = dir.resolve("x.safetensors");
            BadArgument.assertMessage("extraMetadata: key 'width' is reserved",
                    () -> MlpModelFile.save(a, file, Map.of("width", "9")));
            Map<String, String> nullValue = new LinkedHashMap<>();
            nullValue.put("run", null);
            BadArgument.assertMessage("extraMetadata['run']", () -> MlpModelFile.save(a, file, nullValue));
            BadArgument.assertMessage("mlp", () -> MlpModelFile.save(null, file, null));
            BadArgument.assertMessage("file", () -> MlpModelFile.save(a, null, null));
            assertTrue(Files.notExists(file));
        }
    }

    // ---- helpers ---------------------------------------------------------------------

    private static long bytes(SafeTensorsFile f, String name) {
        long n = f.dtype(name).byteSize();
        for (long d : f.shape(name)) {
            n *= d;
        }
        return n;
    }

    /** A copy of {@code in} as {@code name}, same metadata, after {@code edit} (which closes what it drops). */
    private Path rewrite(Path in, String name, Consumer<Map<String, Tensor>> edit) {
        Path out = dir.resolve(name);
        try (SafeTensorsFile f = SafeTensors.read(in)) {
            copy(f, out, f.metadata(), edit);
        }
        return out;
    }

    private void copy(SafeTensorsFile f, Path out, Map<String, String> metadata, Consumer<Map<String, Tensor>> edit) {
        Map<String, Tensor> tensors = new LinkedHashMap<>();
        try {
            for (String n : f.names()) {
                tensors.put(n, f.tensor(n, root));
            }
            edit.accept(tensors);
            SafeTensors.write(out, tensors, metadata);
        } finally {
            tensors.values().forEach(Tensor::close);
        }
    }

    private static void refused(Path file, org.junit.jupiter.api.function.Executable call, String part) {
        ModelFileException e = assertThrows(ModelFileException.class, call);
        assertTrue(e.getMessage().startsWith(file + ": "), "message '" + e.getMessage() + "' must start with the file");
        assertTrue(e.getMessage().contains(part), "message '" + e.getMessage() + "' must mention '" + part + "'");
    }
}
