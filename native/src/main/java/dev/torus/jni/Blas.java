package dev.torus.jni;

import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.Pointer;

/**
 * Single-precision GEMM on raw addresses: OpenBLAS ({@code org.bytedeco:openblas},
 * the no-LAPACK build) for host memory and cuBLAS ({@code org.bytedeco:cuda}) for
 * device memory. Row-major throughout:
 * {@code C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C}, with leading
 * dimensions in elements. Argument checks belong to the caller (the Java layers
 * check shapes before they get here).
 *
 * <p>Each native library loads on first use. cuBLAS handles are created once per
 * device, bound to the legacy default stream (the stream the Torus kernels use),
 * and live until the JVM exits; the default math mode is kept, so fp32 GEMMs do
 * not use TF32.
 */
public final class Blas {
    private Blas() {}

    private static final class Raw extends FloatPointer {
        Raw(long address) {
            super((Pointer) null);
            this.address = address;
        }
    }

    private static final class Cpu {
        static final Throwable LOAD_ERROR;

        static {
            Throwable err = null;
            try {
                org.bytedeco.javacpp.Loader.load(org.bytedeco.openblas.global.openblas_nolapack.class);
            } catch (Throwable t) {
                err = t;
            }
            LOAD_ERROR = err;
        }
    }

    /** Null when OpenBLAS loads; otherwise why it does not. */
    public static String cpuUnavailableCause() {
        return Cpu.LOAD_ERROR == null ? null
                : "OpenBLAS (org.bytedeco:openblas linux-x86_64) failed to load: " + Cpu.LOAD_ERROR;
    }

    /** Row-major SGEMM on host memory through OpenBLAS. */
    public static void sgemmHost(boolean transA, boolean transB, int m, int n, int k, float alpha, long a, int lda,
                                 long b, int ldb, float beta, long c, int ldc) {
        if (Cpu.LOAD_ERROR != null) {
            throw new IllegalStateException(cpuUnavailableCause(), Cpu.LOAD_ERROR);
        }
        if (m == 0 || n == 0) {
            return;
        }
        org.bytedeco.openblas.global.openblas_nolapack.cblas_sgemm(
                org.bytedeco.openblas.global.openblas_nolapack.CblasRowMajor,
                transA ? org.bytedeco.openblas.global.openblas_nolapack.CblasTrans
                       : org.bytedeco.openblas.global.openblas_nolapack.CblasNoTrans,
                transB ? org.bytedeco.openblas.global.openblas_nolapack.CblasTrans
                       : org.bytedeco.openblas.global.openblas_nolapack.CblasNoTrans,
                m, n, k, alpha, new Raw(a), lda, new Raw(b), ldb, beta, new Raw(c), ldc);
    }

    /** Threads OpenBLAS uses (it starts with one per core). */
    public static void setHostThreads(int threads) {
        if (Cpu.LOAD_ERROR == null) {
            org.bytedeco.openblas.global.openblas_nolapack.blas_set_num_threads(threads);
        }
    }

    /**
     * Row-major SGEMM on device memory through cuBLAS, on the legacy default stream
     * (asynchronous, like the kernels). Returns the cuBLAS status (0 = success).
     */
    public static int sgemmDevice(int device, boolean transA, boolean transB, int m, int n, int k, float alpha, long a,
                                  int lda, long b, int ldb, float beta, long c, int ldc) {
        return Gpu.sgemm(device, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }

    /** cuBLAS, loaded only when a device GEMM runs. */
    private static final class Gpu {
        private static final java.util.Map<Integer, org.bytedeco.cuda.cublas.cublasContext> HANDLES =
                new java.util.HashMap<>();

        static synchronized int sgemm(int device, boolean transA, boolean transB, int m, int n, int k, float alpha,
                                      long a, int lda, long b, int ldb, float beta, long c, int ldc) {
            if (m == 0 || n == 0) {
                return 0;
            }
            int st = org.bytedeco.cuda.global.cudart.cudaSetDevice(device);
            if (st != 0) {
                throw new IllegalStateException("cudaSetDevice(" + device + ") failed with error " + st);
            }
            org.bytedeco.cuda.cublas.cublasContext h = HANDLES.get(device);
            if (h == null) {
                h = new org.bytedeco.cuda.cublas.cublasContext();
                st = org.bytedeco.cuda.global.cublas.cublasCreate_v2(h);
                if (st != 0) {
                    throw new IllegalStateException("cublasCreate failed with status " + st);
                }
                HANDLES.put(device, h);
            }
            // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands.
            int opA = transA ? org.bytedeco.cuda.global.cublas.CUBLAS_OP_T : org.bytedeco.cuda.global.cublas.CUBLAS_OP_N;
            int opB = transB ? org.bytedeco.cuda.global.cublas.CUBLAS_OP_T : org.bytedeco.cuda.global.cublas.CUBLAS_OP_N;
            try (FloatPointer al = new FloatPointer(1).put(alpha); FloatPointer be = new FloatPointer(1).put(beta)) {
                return org.bytedeco.cuda.global.cublas.cublasSgemm_v2(h, opB, opA, n, m, k, al, new Raw(b), ldb,
                        new Raw(a), lda, be, new Raw(c), ldc);
            }
        }
    }
}
