package dev.torus.jcuda;

import static dev.torus.internal.NativeAccess.TOKEN;

import dev.torus.CudaException;
import dev.torus.Device;
import dev.torus.nn.Gemm;
import dev.torus.tensor.Tensor;
import jcuda.Pointer;
import jcuda.jcublas.JCublas2;
import jcuda.jcublas.cublasHandle;
import jcuda.jcublas.cublasOperation;
import jcuda.jcublas.cublasPointerMode;
import jcuda.jcublas.cublasStatus;
import jcuda.runtime.JCuda;
import jcuda.runtime.cudaStream_t;

/**
 * A JCublas handle as a layer's {@link Gemm}: {@code linear.useGemm(new JCublasGemm(handle, device))}.
 *
 * <p>The caller owns the handle: it creates it on {@code device}, keeps it alive while the
 * layer uses it, and destroys it. This class never destroys it. The handle must queue on the
 * device's legacy default stream (the one Torus's layer kernels use) and take scalars from
 * host memory, which are cuBLAS's defaults; a handle set to another stream or to device
 * pointer mode is refused at the call, since its GEMMs would race with the layer's other
 * kernels. A cuBLAS handle belongs to the device that was current when it was created, which
 * cuBLAS cannot report: create it on {@code device}. Each call selects {@code device} for the
 * GEMM and restores the thread's current device afterwards. Not for concurrent use from several
 * threads (cuBLAS handles are not).
 */
public final class JCublasGemm implements Gemm {
    private final cublasHandle handle;
    private final Device device;

    /**
     * @throws IllegalArgumentException for a null handle or a non-CUDA device
     * @throws dev.torus.CudaUnavailableException in one line when JCublas cannot load (for example
     *         {@code libcublas.so.12} missing) or the device cannot be used
     */
    public JCublasGemm(cublasHandle handle, Device device) {
        if (handle == null) {
            throw new IllegalArgumentException("handle: expected a cublasHandle created with cublasCreate, got null");
        }
        if (device == null || !device.isCuda()) {
            throw new IllegalArgumentException("device: expected a CUDA device, got " + device
                    + " (JCublas multiplies device memory)");
        }
        JCudaLibraries.ensureCublas("JCublasGemm(" + device + ")");
        device.ensureUsable();
        if (JCudaPointers.nativeValue(handle) == 0) {
            throw new IllegalArgumentException("handle: not created (call JCublas2.cublasCreate on it first)");
        }
        this.handle = handle;
        this.device = device;
    }

    @Override
    public Device device() {
        return device;
    }

    @Override
    public void sgemm(boolean transA, boolean transB, int m, int n, int k, Tensor a, int lda, Tensor b, int ldb,
                      float beta, Tensor c, int ldc) {
        try {
            checkHandleSettings();
            int[] previous = new int[1];
            int rc = JCuda.cudaGetDevice(previous);
            if (rc == 0 && previous[0] != device.ordinal()) {
                rc = JCuda.cudaSetDevice(device.ordinal());
            }
            if (rc != 0) {
                throw new CudaException("JCublasGemm: selecting " + device + " failed: " + jcuda.runtime.cudaError.stringFor(rc));
            }
            try {
                // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands.
                int st = JCublas2.cublasSgemm(handle,
                        transB ? cublasOperation.CUBLAS_OP_T : cublasOperation.CUBLAS_OP_N,
                        transA ? cublasOperation.CUBLAS_OP_T : cublasOperation.CUBLAS_OP_N,
                        n, m, k, Pointer.to(new float[] {1f}),
                        JCudaPointers.devicePointer(b.dataAddress(TOKEN)), ldb,
                        JCudaPointers.devicePointer(a.dataAddress(TOKEN)), lda,
                        Pointer.to(new float[] {beta}),
                        JCudaPointers.devicePointer(c.dataAddress(TOKEN)), ldc);
                if (st != cublasStatus.CUBLAS_STATUS_SUCCESS) {
                    throw new CudaException("JCublasGemm: cublasSgemm(m=" + m + ", n=" + n + ", k=" + k + ") failed with "
                            + cublasStatus.stringFor(st));
                }
            } finally {
                if (previous[0] != device.ordinal()) {
                    JCuda.cudaSetDevice(previous[0]);   // leave the caller's current device as it was
                }
            }
        } catch (jcuda.CudaException e) {
            // the user turned JCuda's or JCublas's exceptions on
            throw new CudaException("JCublasGemm: " + e.getMessage());
        }
    }

    private void checkHandleSettings() {
        cudaStream_t s = new cudaStream_t();
        int st = JCublas2.cublasGetStream(handle, s);
        if (st != cublasStatus.CUBLAS_STATUS_SUCCESS) {
            throw new CudaException("JCublasGemm: cublasGetStream failed with " + cublasStatus.stringFor(st)
                    + " (was the handle destroyed?)");
        }
        if (JCudaPointers.nativeValue(s) != 0) {
            throw new IllegalStateException("JCublasGemm: the handle queues on stream " + s + ", but Torus's layer "
                    + "kernels queue on the legacy default stream; call cublasSetStream(handle, null) first");
        }
        int[] mode = new int[1];
        st = JCublas2.cublasGetPointerMode(handle, mode);
        if (st != cublasStatus.CUBLAS_STATUS_SUCCESS) {
            throw new CudaException("JCublasGemm: cublasGetPointerMode failed with " + cublasStatus.stringFor(st));
        }
        if (mode[0] != cublasPointerMode.CUBLAS_POINTER_MODE_HOST) {
            throw new IllegalStateException("JCublasGemm: the handle takes scalars from device memory; set "
                    + "CUBLAS_POINTER_MODE_HOST on it");
        }
    }

    @Override
    public String toString() {
        return "JCublasGemm[" + device + ", " + handle + "]";
    }
}
