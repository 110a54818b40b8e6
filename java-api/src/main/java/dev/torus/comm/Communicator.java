package dev.torus.comm;

import dev.torus.tensor.Tensor;

/**
 * A group of ranks that run collectives together: the spine of data and model
 * parallelism.
 *
 * <p><b>Ordering.</b> Collectives run in the order they are issued, one at a time,
 * and every rank must issue the same collectives in the same order. Point-to-point
 * operations run beside them: sends to one peer are ordered among themselves, and
 * so are receives from one peer.
 *
 * <p><b>Failure.</b> Every operation has a timeout (per op or the communicator's
 * default). A rank that dies or skips a collective makes the others fail within
 * that timeout plus one second, with {@link CommTimeoutException} or
 * {@link CommAbortedException}. After any such failure the communicator is broken:
 * later operations fail at once, and the survivors rebuild with {@link #shrink} or
 * a fresh {@link #builder()} under a new generation.
 *
 * <p><b>Ownership.</b> Whoever creates a communicator closes it. {@link #shrink} and
 * {@link #split} return new communicators that the caller also owns and closes;
 * the parent stays open (shrink leaves it aborted). A communicator opened by
 * {@link #fromEnv()} also owns its store connection. Tensors passed to an
 * operation stay pinned until its {@link Work} completes.
 */
public interface Communicator extends AutoCloseable {

    /**
     * Joins the world described by the environment: {@code RANK}, {@code WORLD_SIZE},
     * {@code TORUS_RDZV_ENDPOINT} (ZooKeeper connect string), {@code TORUS_RUN_ID}
     * and {@code TORUS_BACKEND} ({@code gloo} or {@code nccl}; default gloo). A positive
     * {@code TORUS_RESTART_COUNT} (set by torusrun after a restart) moves the rendezvous to
     * a fresh namespace, {@code <run id>-restart<k>}. {@code TORUS_JOB_SECRET} (set by
     * torusrun) authenticates to the store and signs this rank's records. Optional:
     * {@code TORUS_COMM_TIMEOUT_MS}, {@code TORUS_COMM_DEBUG=1} (fingerprint checks).
     */
    static Communicator fromEnv() {
        return CommunicatorBuilder.fromEnvironment(System.getenv()).build();
    }

    /** A builder for everything {@link #fromEnv()} does not cover. */
    static CommunicatorBuilder builder() {
        return new CommunicatorBuilder();
    }

    int rank();

    int size();

    /** Incremented by every rebuild ({@link #shrink}, re-creation); part of every rendezvous key. */
    long generation();

    /** The communicator's name in the store, e.g. {@code world} or {@code world/split-1/color-0}. */
    String name();

    Backend backend();

    /**
     * The transport this generation uses: {@code nccl}; or for Gloo {@code shm} (all ranks on
     * one host, through shared memory), {@code shm+gloo} (shared memory inside each host, Gloo
     * between hosts) or {@code gloo} (see {@link Transport}).
     */
    default String transportInUse() {
        return backend().name().toLowerCase(java.util.Locale.ROOT);
    }

    /** In-place all-reduce of {@code tensor}. */
    default Work allReduce(Tensor tensor, ReduceOp op) {
        return allReduce(tensor, tensor, op, OpOptions.defaults());
    }

    /** All-reduce of {@code in} into {@code out} (same dtype, device and element count; may be the same tensor). */
    Work allReduce(Tensor in, Tensor out, ReduceOp op, OpOptions options);

    /** In-place broadcast from {@code root}. */
    default Work broadcast(Tensor tensor, int root) {
        return broadcast(tensor, tensor, root, OpOptions.defaults());
    }

    /** Broadcast of root's {@code in} into every rank's {@code out}; {@code in} is read on the root only. */
    Work broadcast(Tensor in, Tensor out, int root, OpOptions options);

    /** In-place reduce to {@code root}; on the other ranks the tensor's contents are unspecified afterwards. */
    default Work reduce(Tensor tensor, ReduceOp op, int root) {
        return reduce(tensor, tensor, op, root, OpOptions.defaults());
    }

    /** Reduce of every rank's {@code in} into root's {@code out}; {@code out} is unspecified on the other ranks. */
    Work reduce(Tensor in, Tensor out, ReduceOp op, int root, OpOptions options);

    /** Gathers every rank's {@code in} (n elements) into {@code out} (size() * n elements, rank-major). */
    default Work allGather(Tensor in, Tensor out) {
        return allGather(in, out, OpOptions.defaults());
    }

    Work allGather(Tensor in, Tensor out, OpOptions options);

    /** In-place all-gather: {@code buffer} holds size() blocks and this rank's block is already filled. */
    Work allGatherInPlace(Tensor buffer, OpOptions options);

    /** Reduces size() blocks of {@code in} across ranks; block {@code rank()} of the result lands in {@code out}. */
    default Work reduceScatter(Tensor in, Tensor out, ReduceOp op) {
        return reduceScatter(in, out, op, OpOptions.defaults());
    }

    Work reduceScatter(Tensor in, Tensor out, ReduceOp op, OpOptions options);

    /** In-place reduce-scatter: the result is written to block {@code rank()} of {@code buffer}; other blocks are left unspecified. */
    Work reduceScatterInPlace(Tensor buffer, ReduceOp op, OpOptions options);

    /** Block j of {@code in} goes to rank j; block i of {@code out} comes from rank i. */
    default Work allToAll(Tensor in, Tensor out) {
        return allToAll(in, out, OpOptions.defaults());
    }

    Work allToAll(Tensor in, Tensor out, OpOptions options);

    /** In-place all-to-all through a scratch copy. */
    Work allToAllInPlace(Tensor buffer, OpOptions options);

    /** Sends {@code tensor} to {@code dst}; matched by a {@link #recv} on {@code dst} with the same tag. */
    default Work send(Tensor tensor, int dst, int tag) {
        return send(tensor, dst, tag, OpOptions.defaults());
    }

    Work send(Tensor tensor, int dst, int tag, OpOptions options);

    /** Receives into {@code tensor} from {@code src}; the byte size must match the sender's. */
    default Work recv(Tensor tensor, int src, int tag) {
        return recv(tensor, src, tag, OpOptions.defaults());
    }

    Work recv(Tensor tensor, int src, int tag, OpOptions options);

    default Work barrier() {
        return barrier(OpOptions.defaults());
    }

    Work barrier(OpOptions options);

    /**
     * Fails every pending and future operation with {@link CommAbortedException}
     * carrying {@code reason}, and unblocks ranks waiting in native code. Idempotent;
     * callable from any thread.
     */
    void abort(String reason);

    /** True after {@link #abort} or after a failed operation broke the communicator. */
    boolean isAborted();

    /**
     * Collective among the survivors: every rank except {@code excluded} calls it with
     * the same list. Aborts this communicator's in-flight work and returns a new
     * communicator of the survivors, ranked in their old order, at generation + 1.
     * Excluded ranks must not call it.
     */
    Communicator shrink(int... excluded);

    /**
     * Collective over all ranks: ranks with the same {@code color} form a new
     * communicator, ordered by ({@code key}, old rank). A negative color opts out and
     * returns {@code null}.
     */
    Communicator split(int color, int key);

    /**
     * Bytes this rank has sent over the communicator's life. Gloo: measured, the kernel's
     * per-connection byte counters (payload plus Gloo's control messages); on the
     * shared-memory transport, the payload a ring over sockets would send. NCCL: the
     * payload handed to NCCL (it exposes no counters).
     */
    long bytesSent();

    @Override
    void close();
}
