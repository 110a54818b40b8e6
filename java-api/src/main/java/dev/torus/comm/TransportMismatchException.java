package dev.torus.comm;

/**
 * A mismatch that a transport found by itself (the shared-memory transport compares the
 * local ranks' op descriptions at every step). The communicator rethrows it as a
 * {@link CollectiveMismatchException} that names the op and its sequence number.
 */
final class TransportMismatchException extends CollectiveMismatchException {
    TransportMismatchException(String message) {
        super(message);
    }
}
