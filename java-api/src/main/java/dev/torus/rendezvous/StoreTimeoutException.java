package dev.torus.rendezvous;

/** A bounded store wait ran out; the message names the keys that never appeared. */
public class StoreTimeoutException extends StoreException {
    private static final long serialVersionUID = 1L;

    public StoreTimeoutException(String message) {
        super(message);
    }
}
