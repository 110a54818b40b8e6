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
 * <p>Each native library loads on first use. cuBLAS handles come from a per-device
 * pool (one per concurrent caller), are bound to the legacy default stream (the
 * stream the Torus kernels use), and live until the JVM exits; the default math mode
 * is kept, so fp32 GEMMs do not use TF32. Host GEMMs reuse per-thread operand
 * pointers. Neither path takes a global lock or allocates per call.
 */
public final class Blas {
    private Blas() {}

    /** A FloatPointer whose address is set per call: no allocation on the GEMM path. */
    private static final class Raw extends FloatPointer {
        Raw() {
            super((Pointer) null);
        }

        Raw at(long address) {
            this.address = address;
            return this;
        }
    }

    /** Three reusable operand pointers per calling thread. */
    private static final ThreadLocal<Raw[]> OPERANDS = ThreadLocal.withInitial(() -> new Raw[] {new Raw(), new Raw(),
            new Raw()});

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
        Raw[] ops = OPERANDS.get();
        org.bytedeco.openblas.global.openblas_nolapack.cblas_sgemm(
                org.bytedeco.openblas.global.openblas_nolapack.CblasRowMajor,
                transA ? org.bytedeco.openblas.global.openblas_nolapack.CblasTrans
                       : org.bytedeco.openblas.global.openblas_nolapack.CblasNoTrans,
                transB ? org.bytedeco.openblas.global.openblas_nolapack.CblasTrans
                       : org.bytedeco.openblas.global.openblas_nolapack.CblasNoTrans,
                m, n, k, alpha, ops[0].at(a), lda, ops[1].at(b), ldb, beta, ops[2].at(c), ldc);
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

    /**
     * cuBLAS, loaded only when a device GEMM runs. A call borrows a slot (a handle with its
     * alpha/beta scalars and operand pointers) from its device's pool and returns it, so
     * GEMMs from different threads neither share a lock nor allocate per call, and the
     * number of handles is the peak number of concurrent callers, not the number of
     * threads that ever called. Slots live until the JVM exits.
     */
    private static final class Gpu {
        private static final class Slot {
            final org.bytedeco.cuda.cublas.cublasContext handle;
            final FloatPointer alpha = new FloatPointer(1);
            final FloatPointer beta = new FloatPointer(1);
            final Raw[] operands = {new Raw(), new Raw(), new Raw()};

            Slot(org.bytedeco.cuda.cublas.cublasContext handle) {
                this.handle = handle;
            }
        }

        private static final java.util.concurrent.ConcurrentHashMap<Integer,
                java.util.concurrent.ConcurrentLinkedQueue<Slot>> POOLS = new java.util.concurrent.ConcurrentHashMap<>();

        private static Slot borrow(int device) {
            Slot s = POOLS.computeIfAbsent(device, d -> new java.util.concurrent.ConcurrentLinkedQueue<>()).poll();
            if (s != null) {
                return s;
            }
            org.bytedeco.cuda.cublas.cublasContext h = new org.bytedeco.cuda.cublas.cublasContext();
            int st = org.bytedeco.cuda.global.cublas.cublasCreate_v2(h);
            if (st != 0) {
                throw new IllegalStateException("cublasCreate failed with status " + st);
            }
            return new Slot(h);
        }

        static int sgemm(int device, boolean transA, boolean transB, int m, int n, int k, float alpha,
                         long a, int lda, long b, int ldb, float beta, long c, int ldc) {
            if (m == 0 || n == 0) {
                return 0;
            }
            int st = org.bytedeco.cuda.global.cudart.cudaSetDevice(device);
            if (st != 0) {
                throw new IllegalStateException("cudaSetDevice(" + device + ") failed with error " + st);
            }
            Slot s = borrow(device);
            try {
                // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands.
                int opA = transA ? org.bytedeco.cuda.global.cublas.CUBLAS_OP_T
                        : org.bytedeco.cuda.global.cublas.CUBLAS_OP_N;
                int opB = transB ? org.bytedeco.cuda.global.cublas.CUBLAS_OP_T
                        : org.bytedeco.cuda.global.cublas.CUBLAS_OP_N;
                s.alpha.put(alpha);
                s.beta.put(beta);
                return org.bytedeco.cuda.global.cublas.cublasSgemm_v2(s.handle, opB, opA, n, m, k, s.alpha,
                        s.operands[0].at(b), ldb, s.operands[1].at(a), lda, s.beta, s.operands[2].at(c), ldc);
            } finally {
                POOLS.get(device).add(s);
            }
        }
    }
}
