package dev.torus.comm;

import dev.torus.DType;

/**
 * The NCCL calls, and the few CUDA runtime calls, that the NCCL backend makes. The
 * product always uses {@link NcclLibrary}, which calls the real libraries through the
 * bytedeco presets; the interface exists so that the backend's state logic (polling
 * {@code ncclInProgress}, deadlines, abort and finalize races, event reuse) can be
 * driven on a machine without a GPU by a scripted test double.
 *
 * <p>Every method returns the library's status code ({@code ncclResult_t} or
 * {@code cudaError_t}); outputs go to one-element arrays. Handles (communicators,
 * streams, events) are native addresses; 0 is the null handle. Implementations
 * hold no state of their own and are safe to share; the rules about which calls may
 * run concurrently are NCCL's and are enforced by {@link NcclHandle}.
 */
interface NcclDriver {
    /** {@code ncclResult_t} values (stable across NCCL 2.x). */
    int SUCCESS = 0;
    int UNHANDLED_CUDA_ERROR = 1;
    int SYSTEM_ERROR = 2;
    int INTERNAL_ERROR = 3;
    int INVALID_ARGUMENT = 4;
    int INVALID_USAGE = 5;
    int REMOTE_ERROR = 6;
    int IN_PROGRESS = 7;

    /** {@code cudaError_t} values this backend interprets. */
    int CUDA_SUCCESS = 0;
    int CUDA_ERROR_NOT_READY = 600;

    /** Length of {@code ncclUniqueId}, in bytes. */
    int UNIQUE_ID_BYTES = 128;

    // ------------------------------------------------------------------ communicators

    int getUniqueId(byte[] id);

    /** {@code ncclCommInitRankConfig} with a non-blocking config built from NCCL's initializer. */
    int commInitRank(long[] comm, int nranks, byte[] id, int rank);

    /** {@code ncclCommSplit} with a non-blocking config; {@code color < 0} means {@code NCCL_SPLIT_NOCOLOR}. */
    int commSplit(long comm, int color, int key, long[] child);

    int commGetAsyncError(long comm, int[] state);

    int commCount(long comm, int[] count);

    int commUserRank(long comm, int[] rank);

    int commFinalize(long comm);

    int commDestroy(long comm);

    int commAbort(long comm);

    String errorString(int status);

    // ------------------------------------------------------------------ operations (addresses in bytes, counts in elements)

    int groupStart();

    int groupEnd();

    int allReduce(long send, long recv, long count, DType dt, ReduceOp op, long comm, long stream);

    int broadcast(long send, long recv, long count, DType dt, int root, long comm, long stream);

    int reduce(long send, long recv, long count, DType dt, ReduceOp op, int root, long comm, long stream);

    int allGather(long send, long recv, long countPerRank, DType dt, long comm, long stream);

    int reduceScatter(long send, long recv, long countPerRank, DType dt, ReduceOp op, long comm, long stream);

    int send(long buf, long count, DType dt, int peer, long comm, long stream);

    int recv(long buf, long count, DType dt, int peer, long comm, long stream);

    // ------------------------------------------------------------------ CUDA runtime

    int getDevice(int[] ordinal);

    int setDevice(int ordinal);

    /** A non-blocking stream on the current device. */
    int streamCreate(long[] stream);

    int streamDestroy(long stream);

    /** An event without timing on the current device. */
    int eventCreate(long[] event);

    int eventDestroy(long event);

    int eventRecord(long event, long stream);

    /** {@link #CUDA_SUCCESS} when done, {@link #CUDA_ERROR_NOT_READY} while pending, else an error. */
    int eventQuery(long event);

    int streamWaitEvent(long stream, long event);

    String cudaErrorString(int status);
}
