package dev.torus;

/**
 * CUDA cannot be used here: no driver, no device, or a library built without
 * CUDA. The message carries {@link Device#cudaUnavailableCause()}.
 */
public class CudaUnavailableException extends CudaException {
    private static final long serialVersionUID = 1L;

    public CudaUnavailableException(String message) {
        super(message);
    }
}
