package dev.torus.parallel.tensor;

import dev.torus.comm.Communicator;
import dev.torus.comm.CompressedAllReduce;
import dev.torus.comm.Compression;
import dev.torus.comm.ReduceOp;
import dev.torus.memory.Allocator;
import dev.torus.nn.Linear;
import dev.torus.tensor.Tensor;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A tensor-parallel group: the communicator of the ranks that share one layer's weights, the
 * exact all-reduce they sum partial results with, and a count of those all-reduces.
 *
 * <p>The sum is the rank-ordered fp32 one ({@link CompressedAllReduce} with {@link Compression#fp32()}):
 * every element is summed in rank order 0, 1, ..., so a single process that adds the same partial
 * results in the same order gets the same bits. Owns the reducer (close the group); borrows the
 * communicator.
 */
public final class TensorParallel implements AutoCloseable {
    private final Communicator comm;
    private final CompressedAllReduce reducer;
    private final AtomicLong forwardAllReduces = new AtomicLong();
    private final AtomicLong backwardAllReduces = new AtomicLong();
    private final java.util.concurrent.atomic.AtomicInteger layers = new java.util.concurrent.atomic.AtomicInteger();

    public TensorParallel(Communicator comm, Allocator allocator) {
        if (comm == null || allocator == null) {
            throw new IllegalArgumentException("comm and allocator must not be null");
        }
        this.comm = comm;
        this.reducer = new CompressedAllReduce(comm, Compression.fp32(), allocator);
    }

    public Communicator comm() {
        return comm;
    }

    public int size() {
        return comm.size();
    }

    public int rank() {
        return comm.rank();
    }

    /** All-reduces made in forward passes since the group was made. */
    public long forwardAllReduces() {
        return forwardAllReduces.get();
    }

    /** All-reduces made in backward passes since the group was made. */
    public long backwardAllReduces() {
        return backwardAllReduces.get();
    }

    /** A name for one layer's all-reduce buffers (each layer sums tensors of its own size). */
    String newKey(String kind) {
        return "tp-" + kind + "-" + layers.getAndIncrement();
    }

    /**
     * Sums {@code t} (FLOAT32) over the group in place: in rank order for a CPU tensor; with the backend's own
     * all-reduce (NCCL's order, not bitwise the one-process split) for a CUDA tensor.
     */
    void allReduce(String key, Tensor t, boolean forward) {
        if (t.device().isCuda()) {
            comm.allReduce(t, ReduceOp.SUM).await();
        } else {
            // the reducer keeps per-key buffers of one size: a layer sees one key per tensor size
            reducer.allReduce(key + "/" + t.numel(), t, ReduceOp.SUM).await();
        }
        (forward ? forwardAllReduces : backwardAllReduces).incrementAndGet();
    }

    /**
     * {@code n} split in {@code size()} equal parts.
     *
     * @throws IllegalArgumentException naming {@code what} when the degree does not divide it
     */
    int shard(String what, long n) {
        if (n % comm.size() != 0) {
            throw new IllegalArgumentException(what + " (" + n + ") must be divisible by the tensor-parallel degree "
                    + comm.size());
        }
        return (int) (n / comm.size());
    }

    /** Rows [from, from + count) of a row-major [rows, cols] matrix. */
    static float[] rows(float[] m, int cols, int from, int count) {
        float[] out = new float[count * cols];
        System.arraycopy(m, from * cols, out, 0, out.length);
        return out;
    }

    /** Columns [from, from + count) of a row-major [rows, cols] matrix. */
    static float[] columns(float[] m, int rows, int cols, int from, int count) {
        float[] out = new float[rows * count];
        for (int r = 0; r < rows; r++) {
            System.arraycopy(m, r * cols + from, out, r * count, count);
        }
        return out;
    }

    /** Sets a layer's weight (and bias, if {@code bias} is not null) to the given values. */
    static void load(Linear l, float[] weight, float[] bias, Allocator a) {
        try (Tensor w = Tensor.fromArray(a, weight, l.weight().value().shape())) {
            l.weight().value().copyFrom(w);
        }
        if (bias != null) {
            try (Tensor b = Tensor.fromArray(a, bias, l.bias().value().shape())) {
                l.bias().value().copyFrom(b);
            }
        }
    }

    @Override
    public void close() {
        reducer.close();
    }
}
