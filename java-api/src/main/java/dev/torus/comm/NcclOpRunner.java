package dev.torus.comm;

import dev.torus.CudaException;
import java.util.function.Supplier;

/**
 * Runs NCCL operations of one communicator on its own CUDA stream, c10d style: the
 * communicator's stream first waits, through an event, for each producer stream (the
 * caller's stream, or the device's default stream), then NCCL enqueues; once NCCL has
 * settled the enqueue ({@code ncclInProgress} polled away) a completion event is
 * recorded, each producer stream waits for it, and the lane polls that event and the
 * communicator's async error, with a back-off, until completion, error or deadline.
 *
 * <p>The stream and the two events are created once, on first use, and reused by every
 * operation; the CUDA device is made current once per lane thread (a helping caller
 * thread gets its own device back afterwards). Confined to the collective lane (one
 * operation at a time); {@link #close()} runs once, after the lane has stopped. Owned by
 * its {@link NcclCommunicator}.
 */
final class NcclOpRunner implements AutoCloseable {
    /** One NCCL enqueue on {@code comm} and {@code stream}; returns the {@code ncclResult_t}. */
    interface Call {
        int enqueue(long comm, long stream);
    }

    private final NcclDriver driver;
    private final NcclHandle handle;
    private final int ordinal;
    private long stream;
    private long ready;
    private long done;

    NcclOpRunner(NcclDriver driver, NcclHandle handle, int ordinal) {
        this.driver = driver;
        this.handle = handle;
        this.ordinal = ordinal;
    }

    /**
     * Runs {@code calls} (in one NCCL group when there are several) after the work
     * already queued on {@code producers}, and returns once the GPU has finished them.
     * Throws {@link CommTimeoutException} at the deadline; the caller then aborts.
     */
    void run(String what, long timeoutMs, long[] producers, Call... calls) {
        if (calls.length == 0) {
            return; // e.g. a send/recv group whose members were all aborted before it was issued
        }
        long deadline = System.nanoTime() + Math.max(1, timeoutMs) * 1_000_000L;
        onDevice(() -> {
            ensureResources();
            for (long p : producers) {
                cuda(driver.eventRecord(ready, p), "cudaEventRecord(producer stream)");
                cuda(driver.streamWaitEvent(stream, ready), "cudaStreamWaitEvent(comm stream)");
            }
            enqueue(what, deadline, calls);
            // only now has NCCL put its kernels on the stream
            cuda(driver.eventRecord(done, stream), "cudaEventRecord(comm stream)");
            for (long p : producers) {
                cuda(driver.streamWaitEvent(p, done), "cudaStreamWaitEvent(producer stream)");
            }
            awaitDone(what, deadline);
            return null;
        });
    }

    private void enqueue(String what, long deadline, Call[] calls) {
        if (calls.length == 1) {
            handle.issue(what, deadline, c -> calls[0].enqueue(c, stream));
            return;
        }
        java.util.function.LongToIntFunction[] queued = new java.util.function.LongToIntFunction[calls.length];
        for (int i = 0; i < calls.length; i++) {
            Call call = calls[i];
            queued[i] = c -> call.enqueue(c, stream);
        }
        handle.settle(handle.group(what, queued), "ncclGroupEnd for " + what, deadline);
    }

    private void awaitDone(String what, long deadline) {
        NcclHandle.Backoff backoff = new NcclHandle.Backoff();
        while (true) {
            int q = driver.eventQuery(done);
            if (q == NcclDriver.CUDA_SUCCESS) {
                return;
            }
            if (q != NcclDriver.CUDA_ERROR_NOT_READY) {
                cuda(q, "cudaEventQuery during " + what);
            }
            handle.asyncState(what);
            if (System.nanoTime() - deadline > 0) {
                throw new CommTimeoutException(what + " did not complete on the GPU by its deadline");
            }
            backoff.pause();
        }
    }

    /**
     * Runs {@code body} with this communicator's device current. A lane thread keeps the
     * device (it serves only this device's communicators); any other thread gets its
     * previous device back.
     */
    <T> T onDevice(Supplier<T> body) {
        int[] cur = new int[1];
        cuda(driver.getDevice(cur), "cudaGetDevice");
        boolean switched = cur[0] != ordinal;
        if (switched) {
            cuda(driver.setDevice(ordinal), "cudaSetDevice(" + ordinal + ")");
        }
        try {
            return body.get();
        } finally {
            if (switched && !Lane.onLaneThread()) {
                driver.setDevice(cur[0]);
            }
        }
    }

    private void ensureResources() {
        long[] out = new long[1];
        if (stream == 0) {
            cuda(driver.streamCreate(out), "cudaStreamCreateWithFlags");
            stream = out[0];
        }
        if (ready == 0) {
            cuda(driver.eventCreate(out), "cudaEventCreateWithFlags");
            ready = out[0];
        }
        if (done == 0) {
            cuda(driver.eventCreate(out), "cudaEventCreateWithFlags");
            done = out[0];
        }
    }

    private void cuda(int status, String what) {
        if (status != NcclDriver.CUDA_SUCCESS) {
            String detail;
            try {
                detail = driver.cudaErrorString(status);
            } catch (RuntimeException e) {
                detail = "cudaError " + status;
            }
            throw new CudaException(what + " failed on cuda:" + ordinal + ": " + detail + " (cudaError " + status + ")");
        }
    }

    /** Frees the stream and events; call only after the lane has stopped. */
    @Override
    public void close() {
        if (stream == 0 && ready == 0 && done == 0) {
            return;
        }
        onDevice(() -> {
            if (done != 0) {
                driver.eventDestroy(done);
            }
            if (ready != 0) {
                driver.eventDestroy(ready);
            }
            if (stream != 0) {
                driver.streamDestroy(stream);
            }
            done = ready = stream = 0;
            return null;
        });
    }
}
