package dev.torus.comm;

/** A member tried to join or use a communicator generation that the run has already moved past. */
public class StaleGenerationException extends CommException {
    private static final long serialVersionUID = 1L;

    public StaleGenerationException(String message) {
        super(message);
    }
}
