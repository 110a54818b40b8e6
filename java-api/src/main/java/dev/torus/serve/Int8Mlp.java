package dev.torus.serve;

import dev.torus.DType;
import dev.torus.Device;
import dev.torus.memory.Allocator;
import dev.torus.nn.BiasGelu;
import dev.torus.nn.Layer;
import dev.torus.nn.LayerNorm;
import dev.torus.nn.Residual;
import dev.torus.recompute.SegmentContext;
import dev.torus.tensor.Tensor;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The serving form of a torus-mlp model: the same blocks as {@link dev.torus.nn.Mlp} ({@code Linear(no bias)
 * -> LayerNorm -> BiasGelu}, residual where the file says so, then the head), with every linear weight kept
 * int8 in memory ({@link Int8Linear}). Loads from an int8 weight-only file, or quantizes an fp32 file while
 * loading (per output channel, Torus's quantizer, the same values {@code torus quantize-model} writes).
 * CPU. Owns its layers and allocator; {@link #close()} frees them. One thread at a time.
 */
public final class Int8Mlp implements BatchModel {
    private final MlpSpec spec;
    private final Allocator allocator;
    private final List<Layer> layers;
    private final long weightBytes;

    private Int8Mlp(MlpSpec spec, Allocator allocator, List<Layer> layers, long weightBytes) {
        this.spec = spec;
        this.allocator = allocator;
        this.layers = layers;
        this.weightBytes = weightBytes;
    }

    /** Loads {@code file} (int8 weight-only, or fp32 and quantized here). */
    public static Int8Mlp load(Path file) {
        Path int8 = file;
        try (SafeTensorsFile probe = SafeTensors.read(file)) {
            if (!MlpModelFile.spec(probe).quantized()) {
                int8 = null;
            }
        }
        if (int8 == null) {
            try {
                Path tmp = java.nio.file.Files.createTempFile("torus-int8-", ".safetensors");
                try {
                    MlpModelFile.quantize(file, tmp);
                    return load(tmp);
                } finally {
                    java.nio.file.Files.deleteIfExists(tmp);
                }
            } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        }
        Allocator a = Allocator.root("int8-mlp:" + file.getFileName(), Long.MAX_VALUE);
        List<Layer> layers = new ArrayList<>();
        long bytes = 0;
        try (SafeTensorsFile f = SafeTensors.read(file)) {
            MlpSpec s = MlpModelFile.spec(f);
            for (int b = 0; b < s.blocks(); b++) {
                long fanIn = b == 0 ? s.inputs() : s.width();
                String p = "blocks." + b + ".";
                List<Layer> block = new ArrayList<>(3);
                Int8Linear lin = linear(f, p + "linear.weight", null, s.width(), fanIn, a);
                bytes += lin.weightBytes();
                block.add(lin);
                LayerNorm ln = new LayerNorm(s.width(), s.normEps(), Device.cpu(), a);
                block.add(ln);
                copy(f, p + "norm.weight", ln.gamma().value(), s.width(), a);
                copy(f, p + "norm.bias", ln.beta().value(), s.width(), a);
                BiasGelu g = new BiasGelu(s.width(), Device.cpu(), a);
                block.add(g);
                copy(f, p + "gelu.bias", g.bias().value(), s.width(), a);
                if (s.residual() && fanIn == s.width()) {
                    layers.add(new Residual(block));
                } else {
                    layers.addAll(block);
                }
            }
            Int8Linear head = linear(f, "head.weight", "head.bias", s.classes(), s.width(), a);
            bytes += head.weightBytes();
            layers.add(head);
            return new Int8Mlp(s, a, List.copyOf(layers), bytes);
        } catch (RuntimeException e) {
            layers.forEach(Layer::close);
            a.close();
            throw e;
        }
    }

    private static Int8Linear linear(SafeTensorsFile f, String name, String biasName, long out, long in, Allocator a) {
        Tensor q = f.tensor(name, DType.INT8, new long[] {out, in}, a);
        Tensor scale = null;
        try {
            scale = f.tensor(name + MlpModelFile.SCALE_SUFFIX, DType.FLOAT32, new long[] {out}, a);
            Tensor bias = biasName == null ? null : f.tensor(biasName, DType.FLOAT32, new long[] {out}, a);
            return new Int8Linear(q, scale, bias);
        } catch (RuntimeException e) {
            q.close();
            if (scale != null) {
                scale.close();
            }
            throw e;
        }
    }

    private static void copy(SafeTensorsFile f, String name, Tensor dst, long n, Allocator a) {
        try (Tensor t = f.tensor(name, DType.FLOAT32, new long[] {n}, a)) {
            dst.copyFrom(t);
        }
    }

    public MlpSpec spec() {
        return spec;
    }

    @Override
    public int inputs() {
        return spec.inputs();
    }

    @Override
    public int outputs() {
        return spec.classes();
    }

    /** Bytes of the linear weights as held: int8 values plus one fp32 scale per output channel. */
    @Override
    public long weightBytes() {
        return weightBytes;
    }

    /** Logits for {@code x} ([rows, inputs]); the caller owns the result. */
    public Tensor forward(Tensor x) {
        SegmentContext ctx = SegmentContext.of(allocator, 0, 0);
        Tensor h = x;
        for (Layer l : layers) {
            Tensor next = l.forward(h, ctx);
            if (h != x) {
                h.close();
            }
            h = next;
        }
        return h;
    }

    @Override
    public void infer(float[] x, int rows, float[] y) {
        if (x.length != rows * spec.inputs() || y.length != rows * spec.classes()) {
            throw new IllegalArgumentException("x must hold rows x " + spec.inputs() + " and y rows x " + spec.classes()
                    + " values, got " + x.length + " and " + y.length + " for " + rows + " rows");
        }
        try (Tensor in = Tensor.fromArray(allocator, x, rows, spec.inputs()); Tensor out = forward(in)) {
            float[] v = out.toFloatArray();
            System.arraycopy(v, 0, y, 0, y.length);
        }
    }

    @Override
    public void close() {
        layers.forEach(Layer::close);
        allocator.close();
    }
}
