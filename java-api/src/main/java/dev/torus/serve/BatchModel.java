package dev.torus.serve;

/**
 * A model that maps a batch of feature rows to a batch of output rows, as a replica runs it. The replica
 * that loaded it owns it and closes it; {@link #infer} is called from one thread at a time.
 */
public interface BatchModel extends AutoCloseable {
    /** Features per input row. */
    int inputs();

    /** Values per output row. */
    int outputs();

    /**
     * Runs {@code rows} rows: {@code x} holds {@code rows * inputs()} values row-major and {@code y} receives
     * {@code rows * outputs()}.
     */
    void infer(float[] x, int rows, float[] y);

    /** Bytes the weights occupy in memory (for reports). */
    long weightBytes();

    @Override
    void close();
}
