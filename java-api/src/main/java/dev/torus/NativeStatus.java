package dev.torus;

/**
 * The status categories every native entry point of Torus returns, in the numbering
 * that the kernel ABI ({@code torus.h}) and the Gloo shim ({@code torus_gloo.h}) share,
 * and the one mapping from a category to the exception a caller sees. NCCL results are
 * first mapped to a category by the NCCL backend. The communication categories
 * ({@link #TIMEOUT}, {@link #PEER_FAILURE}, {@link #ABORTED}) and the communication
 * flavour of {@link #INTERNAL} are typed by the comm layer, which owns those exception
 * classes and hands every other category back to {@link #exception}.
 *
 * <p>Internal to Torus: public only because several Torus packages use it. Immutable and
 * thread-safe.
 */
public enum NativeStatus {
    /** Success; never turned into an exception. */
    OK(0),
    /** A bad argument that Java did not catch first: {@link IllegalArgumentException}. */
    INVALID_ARGUMENT(1),
    /** Host or device memory exhausted: {@link OutOfMemoryException}. */
    OUT_OF_MEMORY(2),
    /** A CUDA runtime error: {@link CudaException}. */
    CUDA(3),
    /** No usable GPU or driver: {@link CudaUnavailableException}. */
    CUDA_UNAVAILABLE(4),
    /** Anything else, including codes this version does not know: {@link TorusException}. */
    INTERNAL(5),
    /** An operation ran past its bound (comm layer: a timeout exception). */
    TIMEOUT(6),
    /** The transport lost a peer or failed to reach it (comm layer: an abort). */
    PEER_FAILURE(7),
    /** The operation was aborted (comm layer: an abort). */
    ABORTED(8);

    private static final NativeStatus[] BY_CODE = values();

    /** The native code of this category. */
    public final int code;

    NativeStatus(int code) {
        this.code = code;
    }

    /** The category of a native status code; an unknown code is {@link #INTERNAL}. */
    public static NativeStatus of(int code) {
        return code >= 0 && code < BY_CODE.length ? BY_CODE[code] : INTERNAL;
    }

    /**
     * The exception for a failure of this category, carrying {@code message} (the op
     * and the native detail, composed by the caller). The communication categories are
     * plain {@link TorusException}s here; the comm layer gives them their own types.
     *
     * @throws IllegalStateException for {@link #OK}, which is no failure
     */
    public RuntimeException exception(String message) {
        return switch (this) {
            case OK -> throw new IllegalStateException("status OK is no failure: " + message);
            case INVALID_ARGUMENT -> new IllegalArgumentException(message);
            case OUT_OF_MEMORY -> new OutOfMemoryException(message);
            case CUDA -> new CudaException(message);
            case CUDA_UNAVAILABLE -> new CudaUnavailableException(message);
            case INTERNAL, TIMEOUT, PEER_FAILURE, ABORTED -> new TorusException(message);
        };
    }
}
