package dev.torus.cli.bench;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import dev.torus.Device;
import dev.torus.memory.Allocator;
import dev.torus.nn.Linear;
import dev.torus.quant.QuantSpec;
import dev.torus.quant.QuantizedTensor;
import dev.torus.quant.Quantizer;
import dev.torus.recompute.SegmentContext;
import dev.torus.serve.Int8Gemm;
import dev.torus.tensor.Tensor;

/**
 * {@code torus-bench gemm-int8}: the weight-only int8 GEMM ({@link Int8Gemm}) against the fp32 GEMM of the same
 * shape, measured in the same run on the same device. The fp32 side is {@link Linear#forward} (OpenBLAS sgemm on
 * the CPU, cuBLAS on a GPU, then the bias add); the int8 side is {@link Int8Gemm#multiply} on that layer's weight
 * quantized per output channel, with the same bias. Both allocate their output per call, as a layer does.
 *
 * <p>Per shape it reports GFLOP/s ({@code 2 M N K} per call) of each, their ratio (int8 over fp32: above 1 the
 * int8 GEMM is faster), the weight bytes ratio (int8 values plus fp32 scales over fp32 weights: 0.25 + 1/K), and
 * the largest difference between the two outputs relative to the largest fp32 output (the quantization error,
 * a sanity check). Each time is the better of two medians of 5 timed batches, the two kinds alternating.
 */
public final class GemmInt8Bench {
    static final String[] COLUMNS = {"device", "M", "K", "N", "fp32_w_MiB", "fp32_us", "fp32_gflops", "int8_us",
        "int8_gflops", "ratio", "bytes_ratio", "rel_err"};
    static final int[] WIDTHS = {8, 6, 6, 6, 11, 11, 12, 11, 12, 7, 12, 10};

    private final PrintStream out;
    private final List<Integer> rows;
    private final List<int[]> shapes;
    private final double minBatchSeconds;

    /**
     * @param rows   the M values (rows of x: the batch)
     * @param shapes {K, N} pairs (input and output features)
     */
    public GemmInt8Bench(PrintStream out, List<Integer> rows, List<int[]> shapes, double minBatchSeconds) {
        this.out = out;
        this.rows = List.copyOf(rows);
        this.shapes = List.copyOf(shapes);
        this.minBatchSeconds = minBatchSeconds;
    }

    /** Every shape on {@code device}; returns the rows (also printed, and written to {@code json} when not null). */
    public List<BenchRow> run(Device device, Path json) throws IOException {
        device.ensureUsable();
        List<BenchRow> result = new ArrayList<>();
        KernelTimer timer = new KernelTimer(device, minBatchSeconds);
        try (Allocator root = Allocator.root("gemm-int8-bench");
             BenchReport report = new BenchReport(out, json, COLUMNS, WIDTHS)) {
            String blasThreads = System.getenv("OPENBLAS_NUM_THREADS");
            report.header("# gemm-int8 on " + device.describe() + (device.isCpu() ? "; OpenBLAS threads: "
                    + (blasThreads == null ? "all cores" : "OPENBLAS_NUM_THREADS=" + blasThreads) : "")
                    + ": y = x W^T + b, fp32 = Linear.forward ("
                    + (device.isCpu() ? "OpenBLAS" : "cuBLAS") + "), int8 = Int8Gemm.multiply on W quantized per "
                    + "output channel; ratio = int8 GFLOP/s / fp32 GFLOP/s");
            Random r = new Random(20261202L);
            SegmentContext ctx = SegmentContext.of(root, 1, 0);
            for (int[] kn : shapes) {
                int k = kn[0];
                int n = kn[1];
                try (Linear fp32 = new Linear(k, n, true, device, root, 7);
                     QuantizedTensor q = Quantizer.quantize(fp32.weight().value(),
                             QuantSpec.int8Symmetric().perChannel(0))) {
                    Tensor bias = fp32.bias().value();
                    for (int m : rows) {
                        float[] xs = new float[m * k];
                        for (int i = 0; i < xs.length; i++) {
                            xs[i] = (float) r.nextGaussian();
                        }
                        try (Tensor hx = Tensor.fromArray(root, xs, m, k); Tensor x = hx.to(device)) {
                            double err = relativeError(fp32, q, x, ctx, root);
                            Runnable f = () -> fp32.forward(x, ctx).close();
                            Runnable i8 = () -> Int8Gemm.multiply(x, q.values(), q.scales(), bias, root).close();
                            double tf = timer.secondsPerCall(f);
                            double ti = timer.secondsPerCall(i8);
                            ti = Math.min(ti, timer.secondsPerCall(i8));
                            tf = Math.min(tf, timer.secondsPerCall(f));
                            double flops = 2.0 * m * n * k;
                            BenchRow row = new BenchRow().put("device", device.toString()).put("M", m).put("K", k)
                                    .put("N", n).put("fp32_w_MiB", 4.0 * n * k / (1 << 20))
                                    .put("fp32_us", tf * 1e6).put("fp32_gflops", flops / tf / 1e9)
                                    .put("int8_us", ti * 1e6).put("int8_gflops", flops / ti / 1e9)
                                    .put("ratio", tf / ti)
                                    .put("bytes_ratio", (n * (double) k + 4.0 * n) / (4.0 * n * k))
                                    .put("rel_err", err);
                            report.add(row);
                            result.add(row);
                        }
                    }
                }
            }
        }
        return result;
    }

    /** max |int8 y - fp32 y| / max |fp32 y| over one call of each. */
    private static double relativeError(Linear fp32, QuantizedTensor q, Tensor x, SegmentContext ctx, Allocator root) {
        float[] a;
        float[] b;
        try (Tensor y = fp32.forward(x, ctx)) {
            a = y.toFloatArray();
        }
        try (Tensor y = Int8Gemm.multiply(x, q.values(), q.scales(), fp32.bias().value(), root)) {
            b = y.toFloatArray();
        }
        double diff = 0;
        double max = 0;
        for (int i = 0; i < a.length; i++) {
            diff = Math.max(diff, Math.abs((double) a[i] - b[i]));
            max = Math.max(max, Math.abs(a[i]));
        }
        return max == 0 ? diff : diff / max;
    }
}
