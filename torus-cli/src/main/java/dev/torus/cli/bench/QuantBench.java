package dev.torus.cli.bench;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import dev.torus.DType;
import dev.torus.Device;
import dev.torus.tensor.Tensor;
import dev.torus.memory.Allocator;
import dev.torus.memory.HostBuffer;
import dev.torus.memory.MemoryBuffer;
import dev.torus.memory.Stream;
import dev.torus.quant.QuantSpec;
import dev.torus.quant.QuantizedTensor;
import dev.torus.quant.Quantizer;
import dev.torus.quant.ScalarReference;

/**
 * {@code torus-bench quant}: GB/s of logical bytes (bytes read + bytes written,
 * each counted once) for every quantization kernel over a size sweep, with the
 * ratio to a memcpy moving the same logical bytes on the same device, measured
 * in the same run. Before timing, every kernel is checked exactly against
 * {@link ScalarReference} on a freshly seeded input.
 */
public final class QuantBench {
    /** Table columns, also the JSON field order. */
    static final String[] COLUMNS = {"kernel", "device", "input_bytes", "elements", "bytes", "time_us", "gbps",
        "memcpy_gbps", "ratio", "stream_gbps", "stream_ratio"};
    static final int[] WIDTHS = {30, 8, 12, 11, 12, 11, 8, 12, 7, 12, 13};

    private final PrintStream out;
    private final long minBytes;
    private final long maxBytes;
    private final String filter;
    private final double minBatchSeconds;

    public QuantBench(PrintStream out, long minBytes, long maxBytes, String filter, double minBatchSeconds) {
        if (minBytes < 1024 || maxBytes < minBytes) {
            throw new IllegalArgumentException("sizes: need 1024 <= min-size <= max-size, got " + minBytes + " and " + maxBytes);
        }
        this.out = out;
        this.minBytes = minBytes;
        this.maxBytes = maxBytes;
        this.filter = filter;
        this.minBatchSeconds = minBatchSeconds;
    }

    /** One kernel under test: how to set it up on an input, and its logical bytes. */
    abstract static class Kernel {
        final String name;

        Kernel(String name) {
            this.name = name;
        }

        /** Bytes read plus bytes written for n input elements. */
        abstract long logicalBytes(long n);

        /** Bytes read for n input elements (the rest of {@link #logicalBytes} is written): the fp32 input. */
        long readBytes(long n) {
            return 4 * n;
        }

        /** Allocates inputs/outputs from x; the returned case owns them. */
        abstract Case prepare(Tensor x);
    }

    /** A prepared kernel: the call to time, a self-check, and the resources to close. */
    static final class Case implements AutoCloseable {
        final Runnable op;
        final java.util.function.Function<float[], String> check;
        final AutoCloseable[] owned;

        Case(Runnable op, java.util.function.Function<float[], String> check, AutoCloseable... owned) {
            this.op = op;
            this.check = check;
            this.owned = owned;
        }

        @Override
        public void close() {
            for (AutoCloseable c : owned) {
                try {
                    c.close();
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            }
        }
    }

    static List<Kernel> kernels() {
        List<Kernel> k = new ArrayList<>();
        k.add(castKernel(DType.FLOAT16));
        k.add(castKernel(DType.BFLOAT16));
        k.add(new Kernel("cast f16->f32") {
            long logicalBytes(long n) {
                return 6 * n;
            }

            @Override
            long readBytes(long n) {
                return 2 * n;
            }

            Case prepare(Tensor x) {
                Tensor h = Quantizer.cast(x, DType.FLOAT16);
                Tensor y = Tensor.empty(x.allocator(), DType.FLOAT32, x.device(), x.shape());
                return new Case(() -> Quantizer.castInto(h, y), xs -> {
                    float[] got = y.toFloatArray();
                    for (int i = 0; i < xs.length; i++) {
                        float want = ScalarReference.f16ToF32(ScalarReference.f32ToF16(xs[i]));
                        if (Float.floatToRawIntBits(want) != Float.floatToRawIntBits(got[i])) {
                            return "element " + i;
                        }
                    }
                    return null;
                }, y, h);
            }
        });
        k.add(new Kernel("stats absmax+min+max f32") {
            long logicalBytes(long n) {
                return 4 * n;
            }

            Case prepare(Tensor x) {
                return new Case(() -> Quantizer.stats(x, QuantSpec.int8Symmetric().perTensor()).close(), xs -> {
                    float got = Quantizer.absMax(x);
                    float want = ScalarReference.absMax(xs, 0, xs.length);
                    return got == want ? null : "absmax " + got + " != " + want;
                });
            }
        });
        k.add(symmetric("quant int8 per-tensor", QuantSpec.int8Symmetric().perTensor()));
        k.add(symmetric("quant int8 per-channel rows", QuantSpec.int8Symmetric().perChannel(0)));
        k.add(symmetric("quant int8 block 64", QuantSpec.int8Symmetric().blockwise(64)));
        k.add(symmetric("quant int8 block 256", QuantSpec.int8Symmetric().blockwise(256)));
        k.add(symmetric("quant int8 block 4096", QuantSpec.int8Symmetric().blockwise(4096)));
        k.add(symmetric("quant int8 block 256 stochastic",
                QuantSpec.int8Symmetric().blockwise(256).withStochasticRounding(1234)));
        k.add(new Kernel("quant uint8 affine per-tensor") {
            long logicalBytes(long n) {
                return 5 * n;
            }

            Case prepare(Tensor x) {
                QuantSpec spec = QuantSpec.affine(DType.UINT8).perTensor(0.02f, 128);
                QuantizedTensor q = Quantizer.quantize(x, spec);
                return new Case(() -> Quantizer.quantizeInto(x, q), xs -> {
                    byte[] v = q.values().toByteArray();
                    for (int i = 0; i < xs.length; i++) {
                        if ((v[i] & 0xff) != ScalarReference.quantize(xs[i], 1.0f / 0.02f, 128, 0, 255)) {
                            return "element " + i;
                        }
                    }
                    return null;
                }, q);
            }
        });
        k.add(dequant(DType.FLOAT32));
        k.add(dequant(DType.BFLOAT16));
        return k;
    }

    private static Kernel castKernel(DType to) {
        String tn = to == DType.FLOAT16 ? "f16" : "bf16";
        return new Kernel("cast f32->" + tn) {
            long logicalBytes(long n) {
                return 6 * n;
            }

            Case prepare(Tensor x) {
                Tensor y = Tensor.empty(x.allocator(), to, x.device(), x.shape());
                return new Case(() -> Quantizer.castInto(x, y), xs -> {
                    short[] got = y.toShortArray();
                    for (int i = 0; i < xs.length; i++) {
                        short want = to == DType.FLOAT16 ? ScalarReference.f32ToF16(xs[i]) : ScalarReference.f32ToBf16(xs[i]);
                        if (got[i] != want) {
                            return "element " + i;
                        }
                    }
                    return null;
                }, y);
            }
        };
    }

    private static Kernel symmetric(String name, QuantSpec spec) {
        return new Kernel(name) {
            long logicalBytes(long n) {
                return 5 * n;
            }

            Case prepare(Tensor x) {
                QuantizedTensor q = Quantizer.quantize(x, spec);
                return new Case(() -> Quantizer.quantizeInto(x, q), xs -> checkSymmetric(xs, x.shape(), q, spec), q);
            }
        };
    }

    private static Kernel dequant(DType out) {
        String on = out == DType.FLOAT32 ? "f32" : "bf16";
        QuantSpec spec = QuantSpec.int8Symmetric().blockwise(256);
        return new Kernel("dequant int8 block 256 ->" + on) {
            long logicalBytes(long n) {
                return n + (long) out.byteSize() * n + 4 * ((n + 255) / 256);
            }

            @Override
            long readBytes(long n) {
                return n + 4 * ((n + 255) / 256);
            }

            Case prepare(Tensor x) {
                QuantizedTensor q = Quantizer.quantize(x, spec);
                Tensor y = Tensor.empty(x.allocator(), out, x.device(), x.shape());
                return new Case(() -> Quantizer.dequantizeInto(q, y), xs -> {
                    byte[] v = q.values().toByteArray();
                    float[] s = q.scales().toFloatArray();
                    float[] got = y.toFloatArray();
                    for (int i = 0; i < xs.length; i++) {
                        float want = ScalarReference.roundTo(out, ScalarReference.dequantize(v[i], 0, s[i / 256]));
                        if (Float.floatToRawIntBits(want) != Float.floatToRawIntBits(got[i])) {
                            return "element " + i;
                        }
                    }
                    return null;
                }, y, q);
            }
        };
    }

    static String checkSymmetric(float[] xs, long[] shape, QuantizedTensor q, QuantSpec spec) {
        byte[] v = q.values().toByteArray();
        float[] s = q.scales().toFloatArray();
        int groups = s.length;
        float[] amax = new float[groups];
        int[] grp = ScalarReference.groupIndex(shape, spec);
        for (int i = 0; i < xs.length; i++) {
            if (Float.isFinite(xs[i])) {
                amax[grp[i]] = Math.max(amax[grp[i]], Math.abs(xs[i]));
            }
        }
        for (int g = 0; g < groups; g++) {
            if (s[g] != ScalarReference.symmetricScale(amax[g])) {
                return "scale " + g;
            }
        }
        for (int i = 0; i < xs.length; i++) {
            float inv = ScalarReference.inverseScale(s[grp[i]]);
            int want = spec.isStochastic()
                    ? ScalarReference.quantizeStochastic(xs[i], inv, 0, -127, 127, ScalarReference.uniform(spec.seed(), i))
                    : ScalarReference.quantize(xs[i], inv, 0, -127, 127);
            if (v[i] != want) {
                return "element " + i;
            }
        }
        return null;
    }

    /** Runs the self-check and the sweep on each device; returns the rows. */
    public List<BenchRow> run(List<Device> devices, Path json) throws IOException {
        List<Kernel> kernels = new ArrayList<>();
        for (Kernel k : kernels()) {
            if (filter == null || k.name.contains(filter)) {
                kernels.add(k);
            }
        }
        if (kernels.isEmpty()) {
            throw new IllegalArgumentException("--kernels: no kernel name contains '" + filter + "'");
        }
        try (BenchReport report = new BenchReport(out, json, COLUMNS, WIDTHS)) {
            for (Device d : devices) {
                runDevice(d, kernels, report);
            }
            return report.rows();
        }
    }

    private void runDevice(Device device, List<Kernel> kernels, BenchReport report) throws IOException {
        String dname = device.toString();
        try (Allocator alloc = Allocator.root("bench-quant-" + dname)) {
            selfCheck(device, kernels, alloc);
            report.header("# torus-bench quant on " + dname + " [" + device.describe() + "], "
                    + Instant.now() + "; bytes = read + written; ratio = GB/s / memcpy GB/s of the same bytes; stream_ratio = GB/s / "
                    + "a streaming loop that reads and writes each kernel's own byte counts with no arithmetic (CPU only)");
            KernelTimer timer = new KernelTimer(device, minBatchSeconds);
            for (long inBytes = minBytes; inBytes <= maxBytes; inBytes *= 4) {
                long n = inBytes / 4;
                Map<Long, Double> memcpy = new HashMap<>();
                Map<String, Double> streams = new HashMap<>(); // "read/written" -> GB/s of the streaming ceiling
                try (Tensor x = filledInput(alloc, device, n)) {
                    for (Kernel k : kernels) {
                        long bytes = k.logicalBytes(n);
                        double copy = memcpy.computeIfAbsent(bytes, b -> memcpyGbps(alloc, device, timer, b));
                        double sec;
                        try (Case c = k.prepare(x)) {
                            sec = timer.secondsPerCall(c.op);
                        }
                        double gbps = bytes / sec / 1e9;
                        long read = k.readBytes(n);
                        double stream = device.isCpu() ? streams.computeIfAbsent(read + "/" + (bytes - read),
                                key -> streamGbps(alloc, timer, read, bytes - read)) : Double.NaN;
                        report.add(new BenchRow().put("bench", "quant").put("kernel", k.name).put("device", dname)
                                .put("input_bytes", inBytes).put("elements", n).put("bytes", bytes)
                                .put("time_us", sec * 1e6).put("gbps", gbps).put("memcpy_gbps", copy)
                                .put("ratio", gbps / copy).put("stream_gbps", stream).put("stream_ratio", gbps / stream));
                    }
                }
            }
        }
    }

    /** Exact comparison of every kernel with the scalar reference on a fresh input. */
    private void selfCheck(Device device, List<Kernel> kernels, Allocator alloc) {
        long seed = System.nanoTime();
        Random r = new Random(seed);
        long[] shape = {1031, 1017};   // odd sizes: no multiple of any vector width or block
        int n = 1031 * 1017;
        float[] xs = new float[n];
        for (int i = 0; i < n; i++) {
            xs[i] = (float) (r.nextGaussian() * Math.pow(10, r.nextInt(5) - 2));
        }
        xs[7] = Float.NaN;
        xs[8] = Float.POSITIVE_INFINITY;
        int failures = 0;
        try (Tensor host = Tensor.fromArray(alloc, xs, shape); Tensor x = host.to(device)) {
            for (Kernel k : kernels) {
                try (Case c = k.prepare(x)) {
                    c.op.run();
                    String problem = c.check.apply(xs);
                    if (problem != null) {
                        failures++;
                        out.println("# self-check FAILED: " + k.name + " on " + device + ": " + problem + " (seed " + seed + ")");
                    }
                }
            }
        }
        if (failures > 0) {
            throw new IllegalStateException("self-check: " + failures + " kernel(s) differ from the scalar reference on "
                    + device);
        }
        out.println("# self-check on " + device + ": " + kernels.size()
                + " kernels bit-exact against the scalar reference (" + n + " elements, seed " + seed + ")");
    }

    /** A FLOAT32 input of n elements, shaped [1024, n / 1024], with varied magnitudes, filled in 16 MiB chunks. */
    private static Tensor filledInput(Allocator alloc, Device device, long n) {
        float[] chunk = new float[1 << 22];
        Random r = new Random(42);
        for (int i = 0; i < chunk.length; i++) {
            chunk[i] = (float) (r.nextGaussian() * (1 + (i & 255)));
        }
        Tensor host = n % 1024 == 0 ? Tensor.empty(alloc, DType.FLOAT32, Device.cpu(), 1024, n / 1024)
                : Tensor.empty(alloc, DType.FLOAT32, Device.cpu(), n);
        HostBuffer hb = (HostBuffer) host.buffer();
        for (long off = 0; off < n; off += chunk.length) {
            int len = (int) Math.min(chunk.length, n - off);
            ByteBuffer view = hb.view(off * 4, (long) len * 4);
            view.asFloatBuffer().put(chunk, 0, len);
        }
        if (device.isCpu()) {
            return host;
        }
        try (host) {
            return host.to(device);
        }
    }

    /** GB/s (read + written) of the host streaming ceiling for a kernel that reads {@code read} and writes {@code written}. */
    private static double streamGbps(Allocator alloc, KernelTimer timer, long read, long written) {
        try (MemoryBuffer src = alloc.allocate(Device.cpu(), read);
             MemoryBuffer dst = written > 0 ? alloc.allocate(Device.cpu(), written) : null) {
            dev.torus.memory.HostStreams.ceiling(dst, written, src, read); // touch the pages before timing
            double sec = timer.secondsPerCall(() -> dev.torus.memory.HostStreams.ceiling(dst, written, src, read));
            return (read + written) / sec / 1e9;
        }
    }

    /** GB/s of a device-local copy that moves {@code logicalBytes} (half read, half written). */
    private static double memcpyGbps(Allocator alloc, Device device, KernelTimer timer, long logicalBytes) {
        long half = logicalBytes / 2;
        Stream s = Stream.defaultStream(device);
        try (MemoryBuffer a = alloc.allocate(device, half); MemoryBuffer b = alloc.allocate(device, half)) {
            s.copy(a, 0, b, 0, half); // touch the pages before timing
            double sec = timer.secondsPerCall(() -> s.copy(a, 0, b, 0, half));
            return 2.0 * half / sec / 1e9;
        }
    }
}
