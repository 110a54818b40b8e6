package dev.torus.comm;

/**
 * Gloo all-reduce algorithm. AUTO picks by message size; the thresholds come from
 * measurements recorded in docs/COLLECTIVES.md.
 */
public enum GlooAlgorithm {
    AUTO(0), RING(1), BCUBE(2), HALVING_DOUBLING(3);

    final int code;

    GlooAlgorithm(int code) {
        this.code = code;
    }
}
