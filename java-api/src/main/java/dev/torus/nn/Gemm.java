package dev.torus.nn;

import dev.torus.Device;
import dev.torus.tensor.Tensor;

/**
 * A single-precision matrix multiply that a layer can use instead of Torus's own BLAS
 * (for example a JCublas handle, through {@code dev.torus.jcuda.JCublasGemm}). Given to
 * {@link Linear#useGemm}; the caller keeps owning it and whatever handle it wraps.
 *
 * <p>Row-major, as the layers store tensors: {@code C[m,n] = op(A) op(B) + beta * C} with
 * {@code op(X)} = X or its transpose, leading dimensions in elements. The tensors are FLOAT32
 * on {@link #device()}, already shape-checked by the layer. Work may be queued asynchronously,
 * but it must be ordered with the device's legacy default stream, on which Torus queues the
 * layer's other kernels.
 */
public interface Gemm {

    /** The device whose tensors this GEMM multiplies. */
    Device device();

    /** {@code C = op(A) op(B) + beta C}, row-major; throws a {@link dev.torus.CudaException} when it fails. */
    void sgemm(boolean transA, boolean transB, int m, int n, int k, Tensor a, int lda, Tensor b, int ldb, float beta,
               Tensor c, int ldc);
}
