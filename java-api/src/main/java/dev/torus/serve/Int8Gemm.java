package dev.torus.serve;

import static dev.torus.internal.NativeAccess.TOKEN;

import java.util.Arrays;

import dev.torus.DType;
import dev.torus.Device;
import dev.torus.NativeLibrary;
import dev.torus.jni.TorusNative;
import dev.torus.memory.Allocator;
import dev.torus.tensor.Tensor;

/**
 * Weight-only int8 GEMM: int8 weights times fp32 activations, the weights staying int8 in memory.
 *
 * <pre>
 *   y[m][n] = scale[n] * sum_k x[m][k] * q[n][k]  (+ bias[n])
 * </pre>
 *
 * <p>{@code x} is FLOAT32 {@code [M, K]}; {@code q} is INT8 {@code [N, K]}, the layout of a PyTorch
 * {@code nn.Linear} weight ({@code [out, in]}), quantized per output channel as
 * {@code Quantizer.quantize(w, QuantSpec.int8Symmetric().perChannel(0))} makes it ({@code values()} is {@code q},
 * {@code scales()} is {@code scale}); {@code scale} and the optional {@code bias} are FLOAT32 {@code [N]};
 * {@code y} is FLOAT32 {@code [M, N]}. So {@code y = x W^T + b} with W dequantized, as {@code nn.Linear} computes
 * it, without ever materialising W in fp32: each weight is widened inside the kernel.
 *
 * <p><b>Order of summation and determinism.</b> Each output is computed in one fixed order, on every device,
 * instruction set and thread count: 16 partial sums, partial {@code j} adding the products
 * {@code x[m][k] * (float) q[n][k]} for {@code k = j mod 16} in increasing {@code k}, starting from {@code +0.0f};
 * then {@code p[j] = p[j] + p[j + off]} for {@code off = 8, 4, 2, 1} ({@code j < off}); then
 * {@code p[0] * scale[n]}, then {@code + bias[n]}. Every step is one IEEE fp32 multiply or add (no fused
 * multiply-add), so the CPU result is <em>bit-identical</em> to a scalar loop written in that order, at any
 * thread count and on every CPU instruction set, and the CUDA kernel gives the same bits. It is not bit-identical
 * to a plain sequential sum or to an fp32 GEMM (OpenBLAS, cuBLAS) on the dequantized weights, which sum in other
 * orders; against those it agrees to fp32 rounding. NaN and infinities propagate as IEEE arithmetic says (NaN
 * payloads may differ between CPU and GPU). docs/QUANTIZATION.md has the details.
 *
 * <p><b>Arguments</b> are checked here before any native call: a null, a wrong dtype, rank or shape, a mismatched
 * {@code K} or {@code N}, a device other than {@code x}'s, an output overlapping an input raise
 * {@link IllegalArgumentException}, and a closed tensor {@link IllegalStateException}; each message names the
 * argument and what was expected. CUDA work is queued on the device's default stream and may still be running
 * when a method returns (reading {@code y} back waits for it). Stateless and thread-safe; the caller owns every
 * tensor, including the one the allocating overload returns.
 */
public final class Int8Gemm {
    private Int8Gemm() {}

    /**
     * Computes {@code y = (x q^T) * scale (+ bias)} into {@code y}, overwriting it.
     *
     * @param x     FLOAT32 {@code [M, K]}
     * @param q     INT8 {@code [N, K]} (output channels by input features)
     * @param scale FLOAT32 {@code [N]}, one per output channel
     * @param bias  FLOAT32 {@code [N]}, or {@code null} for none
     * @param y     FLOAT32 {@code [M, N]}, on x's device, not overlapping any input
     */
    public static void multiply(Tensor x, Tensor q, Tensor scale, Tensor bias, Tensor y) {
        Shape s = check(x, q, scale, bias);
        open("y", y);
        matrix("y", y, DType.FLOAT32, s.m, s.n, "[M, N] = [" + s.m + ", " + s.n + "] (x's rows, q's rows)");
        sameDevice("y", y, x);
        disjoint(y, "x", x);
        disjoint(y, "q", q);
        disjoint(y, "scale", scale);
        if (bias != null) {
            disjoint(y, "bias", bias);
        }
        run(x, q, scale, bias, y, s);
    }

    /**
     * As {@link #multiply(Tensor, Tensor, Tensor, Tensor, Tensor)}, into a new FLOAT32 {@code [M, N]} tensor on
     * x's device from {@code out}; the caller owns (and closes) it.
     */
    public static Tensor multiply(Tensor x, Tensor q, Tensor scale, Tensor bias, Allocator out) {
        Shape s = check(x, q, scale, bias);
        if (out == null) {
            throw new IllegalArgumentException("out must not be null (the allocator of the result)");
        }
        Tensor y = Tensor.empty(out, DType.FLOAT32, x.device(), s.m, s.n);
        try {
            run(x, q, scale, bias, y, s);
            return y;
        } catch (RuntimeException e) {
            y.close();
            throw e;
        }
    }

    private record Shape(long m, long n, long k) {}

    /** Checks the inputs; returns M, N and K. */
    private static Shape check(Tensor x, Tensor q, Tensor scale, Tensor bias) {
        open("x", x);
        open("q", q);
        open("scale", scale);
        if (bias != null) {
            open("bias", bias);
        }
        if (x.dtype() != DType.FLOAT32 || x.rank() != 2) {
            throw new IllegalArgumentException("x must be a FLOAT32 matrix [M, K], got " + describe(x));
        }
        long m = x.dim(0);
        long k = x.dim(1);
        if (q.dtype() != DType.INT8 || q.rank() != 2) {
            throw new IllegalArgumentException("q must be an INT8 matrix [N, K] (nn.Linear's [out, in] layout), got "
                    + describe(q));
        }
        if (q.dim(1) != k) {
            throw new IllegalArgumentException("q must have K = " + k + " columns (x's columns, the input features), got "
                    + describe(q));
        }
        long n = q.dim(0);
        vector("scale", scale, n);
        if (bias != null) {
            vector("bias", bias, n);
        }
        sameDevice("q", q, x);
        sameDevice("scale", scale, x);
        if (bias != null) {
            sameDevice("bias", bias, x);
        }
        x.device().ensureUsable();
        return new Shape(m, n, k);
    }

    private static void run(Tensor x, Tensor q, Tensor scale, Tensor bias, Tensor y, Shape s) {
        if (s.m == 0 || s.n == 0) {
            return;
        }
        NativeLibrary.check(TorusNative.torus_int8_gemm(x.device().nativeCode(), 0L, x.dataAddress(TOKEN),
                q.dataAddress(TOKEN), scale.dataAddress(TOKEN), bias == null ? 0L : bias.dataAddress(TOKEN),
                y.dataAddress(TOKEN), s.m, s.n, s.k), "int8 GEMM [" + s.m + ", " + s.k + "] x [" + s.n + ", " + s.k
                + "]^T on " + x.device());
    }

    private static void open(String name, Tensor t) {
        if (t == null) {
            throw new IllegalArgumentException(name + " must not be null");
        }
        if (t.isClosed()) {
            throw closed(name, t);
        }
    }

    private static IllegalStateException closed(String name, Tensor t) {
        return new IllegalStateException(name + " must be an open tensor, got " + t);
    }

    private static void matrix(String name, Tensor t, DType dtype, long rows, long cols, String expected) {
        if (t.dtype() != dtype || t.rank() != 2 || t.dim(0) != rows || t.dim(1) != cols) {
            throw new IllegalArgumentException(name + " must be " + dtype + " " + expected + ", got " + describe(t));
        }
    }

    private static void vector(String name, Tensor t, long n) {
        if (t.dtype() != DType.FLOAT32 || t.rank() != 1 || t.dim(0) != n) {
            throw new IllegalArgumentException(name + " must be FLOAT32 [N] = [" + n + "] (one per row of q), got "
                    + describe(t));
        }
    }

    private static void sameDevice(String name, Tensor t, Tensor x) {
        if (!t.device().equals(x.device())) {
            throw new IllegalArgumentException(name + " must be on " + x.device() + " (x's device), got " + t.device());
        }
    }

    /** Refuses a y whose bytes intersect an input's (views of one buffer; both are on one device). */
    private static void disjoint(Tensor y, String name, Tensor in) {
        if (y.byteSize() == 0 || in.byteSize() == 0) {
            return;
        }
        long y0 = y.dataAddress(TOKEN);
        long i0 = in.dataAddress(TOKEN);
        if (y0 < i0 + in.byteSize() && i0 < y0 + y.byteSize()) {
            throw new IllegalArgumentException("y must not overlap " + name + " (the kernel reads " + name
                    + " while it writes y), got views of one buffer");
        }
    }

    private static String describe(Tensor t) {
        return t.dtype() + " " + Arrays.toString(t.shape());
    }
}
