package dev.torus.nn;

import static dev.torus.internal.NativeAccess.TOKEN;

import dev.torus.NativeLibrary;
import dev.torus.tensor.Tensor;
import dev.torus.jni.Blas;
import dev.torus.jni.TorusNative;

/** Device dispatch for the layers' native calls (shapes are checked by the callers). */
final class Ops {
    private Ops() {}

    /** A new FLOAT32 tensor from {@code a}, filled by {@code fill}; closed again if the fill throws. */
    static Tensor filled(dev.torus.memory.Allocator a, dev.torus.Device device, long[] shape,
                         java.util.function.Consumer<Tensor> fill) {
        Tensor t = Tensor.empty(a, dev.torus.DType.FLOAT32, device, shape);
        try {
            fill.accept(t);
        } catch (RuntimeException e) {
            t.close();
            throw e;
        }
        return t;
    }

    static int device(Tensor t) {
        t.device().ensureUsable();
        return t.device().nativeCode();
    }

    /** Row-major {@code C[m,n] = op(A) op(B) + beta C} on the tensors' device. */
    static void gemm(boolean transA, boolean transB, long m, long n, long k, Tensor a, long lda, Tensor b, long ldb,
                     float beta, Tensor c, long ldc, String what) {
        gemm(null, transA, transB, m, n, k, a, lda, b, ldb, beta, c, ldc, what);
    }

    /** As above, through {@code custom} when it is not null. */
    static void gemm(Gemm custom, boolean transA, boolean transB, long m, long n, long k, Tensor a, long lda, Tensor b,
                     long ldb, float beta, Tensor c, long ldc, String what) {
        if (m > Integer.MAX_VALUE || n > Integer.MAX_VALUE || k > Integer.MAX_VALUE || lda > Integer.MAX_VALUE
                || ldb > Integer.MAX_VALUE || ldc > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(what + ": GEMM dimensions must fit in int, got m=" + m + " n=" + n
                    + " k=" + k);
        }
        if (m == 0 || n == 0) {
            return;
        }
        if (k == 0) {
            if (beta == 0f) {
                c.zero();
            }
            return;
        }
        if (custom != null) {
            custom.sgemm(transA, transB, (int) m, (int) n, (int) k, a, (int) lda, b, (int) ldb, beta, c, (int) ldc);
        } else if (c.device().isCpu()) {
            Blas.sgemmHost(transA, transB, (int) m, (int) n, (int) k, 1f, a.dataAddress(TOKEN), (int) lda, b.dataAddress(TOKEN),
                    (int) ldb, beta, c.dataAddress(TOKEN), (int) ldc);
        } else {
            c.device().ensureUsable();
            int st = Blas.sgemmDevice(c.device().ordinal(), transA, transB, (int) m, (int) n, (int) k, 1f,
                    a.dataAddress(TOKEN), (int) lda, b.dataAddress(TOKEN), (int) ldb, beta, c.dataAddress(TOKEN), (int) ldc);
            if (st != 0) {
                throw new dev.torus.CudaException(what + ": cublasSgemm failed with status " + st);
            }
        }
    }

    static void columnSum(Tensor v, Tensor out, long rows, long cols, boolean accumulate, String what) {
        NativeLibrary.check(TorusNative.torus_column_sum(device(v), 0L, v.dataAddress(TOKEN), out.dataAddress(TOKEN), rows, cols,
                accumulate ? 1 : 0), what);
    }

    static void axpy(float alpha, Tensor x, Tensor y, String what) {
        NativeLibrary.check(TorusNative.torus_axpy(device(y), 0L, alpha, x.dataAddress(TOKEN), y.dataAddress(TOKEN), y.numel()),
                what);
    }
}
