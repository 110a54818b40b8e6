package dev.torus;

/**
 * Base of every error Torus raises for a failed operation (as opposed to a bad
 * argument, which is an {@link IllegalArgumentException}, or use after close,
 * which is an {@link IllegalStateException}). Unchecked.
 */
public class TorusException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public TorusException(String message) {
        super(message);
    }

    public TorusException(String message, Throwable cause) {
        super(message, cause);
    }
}
