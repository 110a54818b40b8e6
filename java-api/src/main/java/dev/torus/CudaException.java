package dev.torus;

/** A CUDA call or kernel launch failed. The message names the operation and the CUDA error. */
public class CudaException extends TorusException {
    private static final long serialVersionUID = 1L;

    public CudaException(String message) {
        super(message);
    }
}
