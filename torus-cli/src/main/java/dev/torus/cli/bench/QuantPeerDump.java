package dev.torus.cli.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;

import dev.torus.DType;
import dev.torus.Device;
import dev.torus.tensor.Tensor;
import dev.torus.cli.Json;
import dev.torus.memory.Allocator;
import dev.torus.quant.QuantSpec;
import dev.torus.quant.QuantizedTensor;
import dev.torus.quant.Quantizer;

/**
 * Writes one seeded input and the outputs of the Torus kernels that have a PyTorch peer, as raw little-endian
 * files plus {@code manifest.json}, so that {@code tools/baselines/torch_quant.py --check DIR} can compute the
 * peers on the same device and compare them bit for bit. The input is finite: PyTorch defines no result for
 * NaN or Inf (see docs/QUANTIZATION.md), so those are not part of the comparison.
 *
 * <p>Layout: {@code x} is FLOAT32 [1031, 1024] (1031 rows for per-channel; rows of 1024 hold whole blocks of
 * 256). Every file name is listed in the manifest with its dtype and shape.
 */
public final class QuantPeerDump {
    static final long ROWS = 1031;
    static final long COLS = 1024;

    private QuantPeerDump() {}

    /** Runs the kernels on {@code device} and writes the files into {@code dir} (created if missing). */
    public static void write(Device device, Path dir, long seed) throws IOException {
        Files.createDirectories(dir);
        int n = (int) (ROWS * COLS);
        float[] xs = new float[n];
        Random r = new Random(seed);
        for (int i = 0; i < n; i++) {
            // magnitudes from 1e-3 to 1e3, plus exact ties (k + 0.5) / 8 to exercise round-half-even
            xs[i] = i % 97 == 0 ? (r.nextInt(2001) - 1000 + 0.5f) / 8f
                    : (float) (r.nextGaussian() * Math.pow(10, r.nextInt(7) - 3));
        }
        Map<String, Object> files = new LinkedHashMap<>();
        try (Allocator alloc = Allocator.root("quant-peer-dump");
             Tensor host = Tensor.fromArray(alloc, xs, ROWS, COLS);
             Tensor x = host.to(device)) {
            put(dir, files, "x", host);
            try (Tensor h = Quantizer.cast(x, DType.FLOAT16); Tensor b = Quantizer.cast(x, DType.BFLOAT16);
                 Tensor hf = Quantizer.cast(h, DType.FLOAT32)) {
                put(dir, files, "cast_f16", h);
                put(dir, files, "cast_bf16", b);
                put(dir, files, "f16_to_f32", hf);
            }
            try (Tensor mm = Tensor.fromArray(alloc, Quantizer.minMax(x), 2)) {
                put(dir, files, "min_max", mm);
            }
            try (QuantizedTensor q = Quantizer.quantize(x, QuantSpec.affine(DType.UINT8).perTensor(0.02f, 128))) {
                put(dir, files, "affine_u8", q.values());
            }
            quantized(dir, files, "per_tensor_i8", x, QuantSpec.int8Symmetric().perTensor()).close();
            quantized(dir, files, "per_channel_i8", x, QuantSpec.int8Symmetric().perChannel(0)).close();
            try (QuantizedTensor q = quantized(dir, files, "block256_i8", x, QuantSpec.int8Symmetric().blockwise(256));
                 Tensor d = Quantizer.dequantize(q, DType.FLOAT32)) {
                put(dir, files, "dequant_block256_f32", d);
            }
        }
        Map<String, Object> manifest = new LinkedHashMap<>();
        manifest.put("device", device.toString());
        manifest.put("seed", seed);
        manifest.put("affine_scale", 0.02);
        manifest.put("affine_zero_point", 128);
        manifest.put("files", files);
        Files.writeString(dir.resolve("manifest.json"), Json.write(manifest) + "\n");
    }

    /** Quantizes x, writes values and scales; the caller closes the result. */
    private static QuantizedTensor quantized(Path dir, Map<String, Object> files, String name, Tensor x, QuantSpec spec)
            throws IOException {
        QuantizedTensor q = Quantizer.quantize(x, spec);
        try {
            put(dir, files, name, q.values());
            put(dir, files, name + "_scales", q.scales());
            return q;
        } catch (IOException | RuntimeException e) {
            q.close();
            throw e;
        }
    }

    private static void put(Path dir, Map<String, Object> files, String name, Tensor t) throws IOException {
        Files.write(dir.resolve(name + ".bin"), t.toByteArray());
        Map<String, Object> meta = new LinkedHashMap<>();
        meta.put("dtype", t.dtype().name().toLowerCase(java.util.Locale.ROOT));
        meta.put("shape", t.shape());
        files.put(name, meta);
    }
}
