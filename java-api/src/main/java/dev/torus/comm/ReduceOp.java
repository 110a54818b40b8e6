package dev.torus.comm;

/**
 * Reduction applied by all-reduce, reduce and reduce-scatter.
 *
 * <p>AVG is SUM followed by division by the number of ranks: floating types divide
 * in fp32/fp64 (fp16 and bf16 round to nearest even afterwards), integer types use
 * truncating division. MIN and MAX propagate NaN. Integer SUM and PROD wrap on
 * overflow.
 */
public enum ReduceOp {
    SUM(0), PROD(1), MIN(2), MAX(3), AVG(4);

    final int code;

    ReduceOp(int code) {
        this.code = code;
    }
}
