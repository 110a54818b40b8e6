package dev.torus.rendezvous;

/**
 * The store refused an operation for lack of authorization: this client presented no
 * credential, or not the one the key's owner (a job's secret) was created with.
 */
public class StoreAuthException extends StoreException {
    private static final long serialVersionUID = 1L;

    public StoreAuthException(String message, Throwable cause) {
        super(message, cause);
    }
}
