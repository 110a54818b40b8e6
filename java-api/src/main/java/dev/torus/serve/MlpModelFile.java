package dev.torus.serve;

import dev.torus.DType;
import dev.torus.Device;
import dev.torus.memory.Allocator;
import dev.torus.memory.Stream;
import dev.torus.nn.BiasGelu;
import dev.torus.nn.Layer;
import dev.torus.nn.LayerNorm;
import dev.torus.nn.Linear;
import dev.torus.nn.Mlp;
import dev.torus.nn.Parameter;
import dev.torus.nn.Residual;
import dev.torus.quant.QuantSpec;
import dev.torus.quant.QuantizedTensor;
import dev.torus.quant.Quantizer;
import dev.torus.tensor.Tensor;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The parameters of a {@link Mlp} as a safetensors file (see {@link SafeTensors}), in the
 * PyTorch layout, so that Python can load them into an equivalent {@code torch.nn} model.
 *
 * <p>Tensors, block {@code b} counting from 0 ({@code fanIn} is {@code inputs} for block 0
 * and {@code width} after it), all FLOAT32:
 * <pre>
 * blocks.{b}.linear.weight   [width, fanIn]     Linear weight, [out, in]; the block Linear has no bias
 * blocks.{b}.norm.weight     [width]            LayerNorm gamma
 * blocks.{b}.norm.bias       [width]            LayerNorm beta
 * blocks.{b}.gelu.bias       [width]            BiasGelu bias
 * head.weight                [classes, width]
 * head.bias                  [classes]
 * </pre>
 *
 * <p>Metadata: {@code format} = {@code torus-mlp}; {@code dtype} = {@code fp32} or
 * {@code int8-weight-only}; {@code inputs}, {@code width}, {@code blocks}, {@code classes}
 * (decimal integers); {@code residual} ({@code true} or {@code false}); {@code norm_eps} (the
 * LayerNorm epsilon as a decimal, {@code 1.0E-5} for {@link Mlp}); then the caller's own keys.
 *
 * <p>The int8 weight-only file ({@link #quantize}) holds every {@code *.linear.weight} and
 * {@code head.weight} as INT8 {@code [out, in]}, quantized per output channel by
 * {@code Quantizer.quantize(w, QuantSpec.int8Symmetric().perChannel(0))} (scale = row absmax /
 * 127, q = clamp(roundHalfEven(w / scale), -127, 127)), plus a FLOAT32 tensor
 * {@code <name>_scale} {@code [out]} with the scales, so that {@code w ≈ q * scale}. The other
 * tensors stay FLOAT32.
 *
 * <p>Static methods only. The methods read a model's parameters or write them, so the model
 * must not be trained or closed while they run; otherwise safe from any thread.
 */
public final class MlpModelFile {
    /** Metadata {@code format} of these files. */
    public static final String FORMAT = "torus-mlp";
    /** Metadata {@code dtype} of a file with FLOAT32 weights. */
    public static final String DTYPE_FP32 = "fp32";
    /** Metadata {@code dtype} of a file with INT8 weights and FLOAT32 scales. */
    public static final String DTYPE_INT8_WEIGHT_ONLY = "int8-weight-only";
    /** Appended to a weight's name to name its scales in an int8 weight-only file. */
    public static final String SCALE_SUFFIX = "_scale";

    /** The LayerNorm epsilon {@link Mlp} builds its blocks with (LayerNorm does not expose it). */
    static final float MLP_NORM_EPS = 1e-5f;
    static final QuantSpec WEIGHT_QUANT = QuantSpec.int8Symmetric().perChannel(0);

    private static final List<String> SPEC_KEYS =
            List.of("format", "dtype", "inputs", "width", "blocks", "classes", "residual", "norm_eps");
    /** How many names a refusal lists per kind before it abbreviates. */
    private static final int LISTED = 10;

    private MlpModelFile() {
    }

    /**
     * Writes {@code mlp}'s parameters as an fp32 torus-mlp file (atomically; see
     * {@link SafeTensors#write}). Parameters on a GPU are copied to the host first, from the
     * parameters' allocator, and those copies freed before returning.
     *
     * @param extraMetadata more metadata (for example a training run's id), written after the
     *                      model's keys; {@code null} for none; may not use the model's keys
     * @throws IllegalArgumentException for a null or reserved argument
     * @throws ModelFileException       when the file system fails
     */
    public static void save(Mlp mlp, Path file, Map<String, String> extraMetadata) {
        notNull("mlp", mlp);
        notNull("file", file);
        List<Named> params = parameters(mlp);
        Map<String, String> metadata = metadata(specOf(mlp, params));
        if (extraMetadata != null) {
            for (Map.Entry<String, String> e : extraMetadata.entrySet()) {
                if (e.getKey() == null || e.getValue() == null) {
                    throw new IllegalArgumentException("extraMetadata['" + e.getKey() + "']: keys and values must not be"
                            + " null");
                }
                if (SPEC_KEYS.contains(e.getKey())) {
                    throw new IllegalArgumentException("extraMetadata: key '" + e.getKey()
                            + "' is reserved for the model's description " + SPEC_KEYS);
                }
                metadata.put(e.getKey(), e.getValue());
            }
        }
        Map<String, Tensor> tensors = new LinkedHashMap<>();
        List<Tensor> copies = new ArrayList<>();
        try {
            for (Named n : params) {
                Tensor v = n.parameter.value();
                if (!v.device().isCpu()) {
                    v = v.to(Device.cpu());
                    copies.add(v);
                }
                tensors.put(n.name, v);
            }
            SafeTensors.write(file, tensors, metadata);
        } finally {
            copies.forEach(Tensor::close);
        }
    }

    /**
     * The architecture {@code f}'s metadata describes, checked: format {@code torus-mlp},
     * dtype {@code fp32} or {@code int8-weight-only}, positive integer counts, residual
     * {@code true} or {@code false}, a positive finite {@code norm_eps}. The tensors are not
     * looked at ({@link #loadInto} checks them).
     *
     * @throws ModelFileException naming the file and the key that is missing or wrong
     */
    public static MlpSpec spec(SafeTensorsFile f) {
        notNull("f", f);
        Map<String, String> m = f.metadata();
        String format = m.get("format");
        if (format == null) {
            throw new ModelFileException(f.path(), "not a " + FORMAT + " file: its metadata has no 'format' key"
                    + " (metadata keys: " + m.keySet() + ")");
        }
        if (!format.equals(FORMAT)) {
            throw new ModelFileException(f.path(), "not a " + FORMAT + " file: metadata 'format' is '" + format
                    + "', expected '" + FORMAT + "'");
        }
        String dtype = required(f, "dtype");
        if (!dtype.equals(DTYPE_FP32) && !dtype.equals(DTYPE_INT8_WEIGHT_ONLY)) {
            throw new ModelFileException(f.path(), "metadata 'dtype' is '" + dtype + "', expected '" + DTYPE_FP32
                    + "' or '" + DTYPE_INT8_WEIGHT_ONLY + "'");
        }
        int inputs = positiveInt(f, "inputs");
        int width = positiveInt(f, "width");
        int blocks = positiveInt(f, "blocks");
        int classes = positiveInt(f, "classes");
        String residual = required(f, "residual");
        if (!residual.equals("true") && !residual.equals("false")) {
            throw new ModelFileException(f.path(), "metadata 'residual' is '" + residual
                    + "', expected 'true' or 'false'");
        }
        String epsText = required(f, "norm_eps");
        float eps;
        try {
            eps = Float.parseFloat(epsText);
        } catch (NumberFormatException e) {
            eps = Float.NaN;
        }
        if (!(eps > 0f) || Float.isInfinite(eps)) {
            throw new ModelFileException(f.path(), "metadata 'norm_eps' is '" + epsText
                    + "', expected a positive finite number");
        }
        return new MlpSpec(inputs, width, blocks, classes, residual.equals("true"), eps,
                dtype.equals(DTYPE_INT8_WEIGHT_ONLY));
    }

    /**
     * Copies the parameters in {@code f} into {@code mlp}, in place. First checks, before it
     * changes anything, that the file's metadata describes {@code mlp}'s architecture (inputs,
     * width, blocks, classes, residual, LayerNorm epsilon) and that every tensor is there with
     * the model's shape and nothing else is. An int8 weight-only file is dequantized
     * ({@code q * scale}, by {@link Quantizer#dequantize}), so the model gets the weights an
     * int8 replica computes with. Host copies come from each parameter's allocator and are freed
     * before returning. If reading fails part way, the model holds a mix of old and new values.
     *
     * @throws ModelFileException when the file does not describe this model (the message names
     *                            what differs: the key or the tensor, expected and actual)
     */
    public static void loadInto(SafeTensorsFile f, Mlp mlp) {
        notNull("f", f);
        notNull("mlp", mlp);
        MlpSpec file = spec(f);
        List<Named> params = parameters(mlp);
        MlpSpec model = specOf(mlp, params);
        List<String> differences = new ArrayList<>();
        differ(differences, "inputs", file.inputs(), model.inputs());
        differ(differences, "width", file.width(), model.width());
        differ(differences, "blocks", file.blocks(), model.blocks());
        differ(differences, "classes", file.classes(), model.classes());
        differ(differences, "residual", file.residual(), model.residual());
        differ(differences, "norm_eps", file.normEps(), model.normEps());
        if (!differences.isEmpty()) {
            throw new ModelFileException(f.path(), "holds a different " + FORMAT + " than the model: "
                    + String.join(", ", differences));
        }
        checkTensors(f, file);
        for (Named n : params) {
            Tensor dst = n.parameter.value();
            long[] shape = dst.shape();
            Allocator a = dst.allocator();
            try (Tensor host = file.quantized() && isWeight(n.name) ? dequantized(f, n.name, shape, a)
                    : f.tensor(n.name, DType.FLOAT32, shape, a)) {
                copy(host, dst);
            }
        }
    }

    /**
     * Reads the fp32 torus-mlp file {@code in} and writes its int8 weight-only version to
     * {@code out} (atomically): weights quantized per output channel with their
     * {@code _scale} tensors, other tensors unchanged, metadata unchanged except
     * {@code dtype = int8-weight-only}. Holds the model (fp32 and int8) in host memory while
     * it writes; {@code in} and {@code out} may be the same file.
     *
     * @throws ModelFileException when {@code in} is not a torus-mlp file, is already quantized,
     *                            or does not hold the tensors its metadata describes
     */
    public static void quantize(Path in, Path out) {
        notNull("in", in);
        notNull("out", out);
        try (SafeTensorsFile f = SafeTensors.read(in)) {
            MlpSpec spec = spec(f);
            if (spec.quantized()) {
                throw new ModelFileException(in, "is already " + DTYPE_INT8_WEIGHT_ONLY
                        + "; quantize needs an " + DTYPE_FP32 + " " + FORMAT + " file");
            }
            checkTensors(f, spec);
            Map<String, String> metadata = new LinkedHashMap<>(f.metadata());
            metadata.put("dtype", DTYPE_INT8_WEIGHT_ONLY);
            Allocator parent = Allocator.defaultAllocator();
            try (Allocator a = parent.newChildAllocator("MlpModelFile.quantize", Long.MAX_VALUE)) {
                List<AutoCloseable> open = new ArrayList<>();
                try {
                    Map<String, Tensor> tensors = new LinkedHashMap<>();
                    for (Map.Entry<String, long[]> e : shapes(spec).entrySet()) {
                        String name = e.getKey();
                        Tensor t = f.tensor(name, DType.FLOAT32, e.getValue(), a);
                        if (isWeight(name)) {
                            try (t) {
                                QuantizedTensor q = Quantizer.quantize(t, WEIGHT_QUANT);
                                open.add(q);
                                tensors.put(name, q.values());
                                tensors.put(name + SCALE_SUFFIX, q.scales());
                            }
                        } else {
                            open.add(t);
                            tensors.put(name, t);
                        }
                    }
                    SafeTensors.write(out, tensors, metadata);
                } finally {
                    closeAll(open);
                }
            }
        }
    }

    // ---- internals --------------------------------------------------------------------

    /** A parameter and its name in the file. */
    record Named(String name, Parameter parameter) {
    }

    /** True for the tensors an int8 weight-only file holds as INT8: the Linear weights. */
    static boolean isWeight(String name) {
        return name.equals("head.weight") || (name.startsWith("blocks.") && name.endsWith(".linear.weight"));
    }

    /** The fp32 tensors of a model with this architecture, in file order, with their shapes. */
    static Map<String, long[]> shapes(MlpSpec s) {
        Map<String, long[]> m = new LinkedHashMap<>();
        for (int b = 0; b < s.blocks(); b++) {
            String p = "blocks." + b + ".";
            m.put(p + "linear.weight", new long[] {s.width(), b == 0 ? s.inputs() : s.width()});
            m.put(p + "norm.weight", new long[] {s.width()});
            m.put(p + "norm.bias", new long[] {s.width()});
            m.put(p + "gelu.bias", new long[] {s.width()});
        }
        m.put("head.weight", new long[] {s.classes(), s.width()});
        m.put("head.bias", new long[] {s.classes()});
        return m;
    }

    /** The model's parameters with their names, walking its layers (through residual blocks, past dropout). */
    static List<Named> parameters(Mlp mlp) {
        List<Layer> flat = new ArrayList<>();
        for (Layer l : mlp.layers()) {
            if (l instanceof Residual r) {
                flat.addAll(r.inner());
            } else {
                flat.add(l);
            }
        }
        flat.removeIf(l -> l.parameters().isEmpty()); // dropout
        List<Named> out = new ArrayList<>();
        int i = 0;
        for (int b = 0; b < mlp.blocks(); b++) {
            String p = "blocks." + b + ".";
            Linear linear = layer(flat, i++, Linear.class);
            LayerNorm norm = layer(flat, i++, LayerNorm.class);
            BiasGelu gelu = layer(flat, i++, BiasGelu.class);
            if (linear.bias() != null) {
                throw new IllegalStateException("Mlp block " + b + ": expected a Linear without bias");
            }
            out.add(new Named(p + "linear.weight", linear.weight()));
            out.add(new Named(p + "norm.weight", norm.gamma()));
            out.add(new Named(p + "norm.bias", norm.beta()));
            out.add(new Named(p + "gelu.bias", gelu.bias()));
        }
        Linear head = layer(flat, i++, Linear.class);
        if (head.bias() == null || i != flat.size()) {
            throw new IllegalStateException("Mlp: expected " + mlp.blocks()
                    + " blocks then a Linear head with bias, got " + flat);
        }
        out.add(new Named("head.weight", head.weight()));
        out.add(new Named("head.bias", head.bias()));
        return out;
    }

    private static <T extends Layer> T layer(List<Layer> flat, int i, Class<T> type) {
        if (i >= flat.size() || !type.isInstance(flat.get(i))) {
            throw new IllegalStateException("Mlp: expected a " + type.getSimpleName() + " at parameter layer " + i
                    + ", got " + (i < flat.size() ? flat.get(i) : "the end") + " in " + flat);
        }
        return type.cast(flat.get(i));
    }

    private static MlpSpec specOf(Mlp mlp, List<Named> params) {
        long[] first = params.get(0).parameter.value().shape();
        long[] head = params.get(params.size() - 2).parameter.value().shape();
        return new MlpSpec((int) first[1], (int) first[0], mlp.blocks(), (int) head[0], mlp.residual(), MLP_NORM_EPS,
                false);
    }

    private static Map<String, String> metadata(MlpSpec s) {
        Map<String, String> m = new LinkedHashMap<>();
        m.put("format", FORMAT);
        m.put("dtype", s.quantized() ? DTYPE_INT8_WEIGHT_ONLY : DTYPE_FP32);
        m.put("inputs", Integer.toString(s.inputs()));
        m.put("width", Integer.toString(s.width()));
        m.put("blocks", Integer.toString(s.blocks()));
        m.put("classes", Integer.toString(s.classes()));
        m.put("residual", Boolean.toString(s.residual()));
        m.put("norm_eps", Float.toString(s.normEps()));
        return m;
    }

    /**
     * Every tensor the spec implies is in {@code f} with its dtype and shape, and there are no
     * others; one refusal lists all that is wrong.
     */
    private static void checkTensors(SafeTensorsFile f, MlpSpec spec) {
        Map<String, DType> dtypes = new LinkedHashMap<>();
        Map<String, long[]> shapes = new LinkedHashMap<>();
        for (Map.Entry<String, long[]> e : shapes(spec).entrySet()) {
            String name = e.getKey();
            long[] shape = e.getValue();
            if (spec.quantized() && isWeight(name)) {
                dtypes.put(name, DType.INT8);
                shapes.put(name, shape);
                dtypes.put(name + SCALE_SUFFIX, DType.FLOAT32);
                shapes.put(name + SCALE_SUFFIX, new long[] {shape[0]});
            } else {
                dtypes.put(name, DType.FLOAT32);
                shapes.put(name, shape);
            }
        }
        List<String> missing = new ArrayList<>();
        List<String> wrong = new ArrayList<>();
        for (Map.Entry<String, DType> e : dtypes.entrySet()) {
            String name = e.getKey();
            long[] shape = shapes.get(name);
            if (!f.contains(name)) {
                missing.add(name);
            } else if (f.dtype(name) != e.getValue() || !Arrays.equals(f.shape(name), shape)) {
                wrong.add("tensor '" + name + "': expected " + SafeTensors.describe(e.getValue(), shape)
                        + ", the file has " + SafeTensors.describe(f.dtype(name), f.shape(name)));
            }
        }
        Set<String> unexpected = new LinkedHashSet<>(f.names());
        unexpected.removeAll(dtypes.keySet());
        if (missing.isEmpty() && wrong.isEmpty() && unexpected.isEmpty()) {
            return;
        }
        List<String> problems = new ArrayList<>();
        if (!wrong.isEmpty()) {
            problems.add(listed(wrong, "; "));
        }
        if (!missing.isEmpty()) {
            problems.add("missing tensors " + listed(missing, ", "));
        }
        if (!unexpected.isEmpty()) {
            problems.add("unexpected tensors " + listed(new ArrayList<>(unexpected), ", "));
        }
        throw new ModelFileException(f.path(), "does not hold the tensors its metadata describes ("
                + (spec.quantized() ? DTYPE_INT8_WEIGHT_ONLY : DTYPE_FP32) + ", inputs " + spec.inputs() + ", width "
                + spec.width() + ", blocks " + spec.blocks() + ", classes " + spec.classes() + "): "
                + String.join("; ", problems));
    }

    /** An INT8 weight and its scales from {@code f}, dequantized to a new FLOAT32 tensor the caller owns. */
    private static Tensor dequantized(SafeTensorsFile f, String name, long[] shape, Allocator a) {
        Tensor values = f.tensor(name, DType.INT8, shape, a);
        Tensor scales = null;
        try {
            scales = f.tensor(name + SCALE_SUFFIX, DType.FLOAT32, new long[] {shape[0]}, a);
            float[] s = scales.toFloatArray();
            for (int i = 0; i < s.length; i++) {
                if (!(s[i] >= 0f) || Float.isInfinite(s[i])) {
                    throw new ModelFileException(f.path(), "tensor '" + name + SCALE_SUFFIX + "': row " + i
                            + " has scale " + s[i] + "; scales must be finite and >= 0");
                }
            }
            QuantizedTensor q = QuantizedTensor.of(values, scales, null, WEIGHT_QUANT);
            values = null;
            scales = null;
            try (q) {
                return Quantizer.dequantize(q, DType.FLOAT32);
            }
        } finally {
            if (values != null) {
                values.close();
            }
            if (scales != null) {
                scales.close();
            }
        }
    }

    /** Copies a host tensor's bytes into {@code dst}, on whatever device it lives, and waits for the copy. */
    private static void copy(Tensor host, Tensor dst) {
        if (dst.device().isCpu()) {
            dst.copyFrom(host);
            return;
        }
        Stream s = Stream.defaultStream(dst.device());
        s.copy(host.buffer(), 0, dst.buffer(), 0, host.byteSize());
        s.synchronize();
    }

    private static String required(SafeTensorsFile f, String key) {
        String v = f.metadata().get(key);
        if (v == null) {
            throw new ModelFileException(f.path(), "metadata has no '" + key + "' key, which a " + FORMAT
                    + " file needs (metadata keys: " + f.metadata().keySet() + ")");
        }
        return v;
    }

    private static int positiveInt(SafeTensorsFile f, String key) {
        String v = required(f, key);
        int n;
        try {
            n = Integer.parseInt(v);
        } catch (NumberFormatException e) {
            n = 0;
        }
        if (n <= 0) {
            throw new ModelFileException(f.path(), "metadata '" + key + "' is '" + v
                    + "', expected a positive integer");
        }
        return n;
    }

    private static void differ(List<String> out, String key, Object file, Object model) {
        if (!file.equals(model)) {
            out.add(key + " " + file + " in the file, " + model + " in the model");
        }
    }

    private static String listed(List<String> items, String separator) {
        List<String> shown = items.size() <= LISTED ? items : items.subList(0, LISTED);
        return "[" + String.join(separator, shown) + (items.size() > LISTED ? separator + "... "
                + (items.size() - LISTED) + " more" : "") + "]";
    }

    private static void closeAll(List<AutoCloseable> open) {
        RuntimeException failure = null;
        for (AutoCloseable c : open) {
            try {
                c.close();
            } catch (Exception e) {
                if (failure == null) {
                    failure = e instanceof RuntimeException r ? r : new IllegalStateException(e);
                } else {
                    failure.addSuppressed(e);
                }
            }
        }
        if (failure != null) {
            throw failure;
        }
    }

    private static void notNull(String name, Object value) {
        if (value == null) {
            throw new IllegalArgumentException(name + " must not be null");
        }
    }
}
