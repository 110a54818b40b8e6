package dev.torus.comm;

import dev.torus.NativeStatus;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.LongToIntFunction;

/**
 * A guarded {@code ncclComm_t}, modelled on c10d's {@code NCCLComm}: every NCCL call on
 * the communicator runs under one lock and only while the handle is {@link State#LIVE},
 * so an abort or a destroy can never free the communicator while another thread is
 * inside a call on it, and no call ever reaches a freed communicator.
 *
 * <p>The communicator is non-blocking ({@code blocking = 0}): every call returns at
 * once, possibly with {@code ncclInProgress}, and the lock is held only for the call
 * itself. Waiting ({@link #awaitSettled}) polls {@code ncclCommGetAsyncError} with a
 * back-off and releases the lock between polls, which is what lets {@link #abort()}
 * from another thread (the watchdog, a user, {@code close}) get in and end the wait.
 *
 * <p>States: {@code LIVE -> ABORTED} ({@code ncclCommAbort}) or {@code LIVE -> DESTROYED}
 * ({@code ncclCommFinalize} settled, then {@code ncclCommDestroy}). Both are final:
 * {@link #abort()} after either is a no-op, and a finalize that fails or times out
 * aborts instead of destroying. Owned by one communicator object, which releases it
 * exactly once; thread-safe.
 */
final class NcclHandle {
    /** Lifecycle of the native communicator. */
    enum State { LIVE, ABORTED, DESTROYED }

    private final NcclDriver driver;
    private final long comm;
    private final String name;
    private final ReentrantLock lock = new ReentrantLock();
    private volatile State state = State.LIVE;

    NcclHandle(NcclDriver driver, long comm, String name) {
        if (comm == 0) {
            throw new IllegalArgumentException("comm must be a non-null ncclComm_t");
        }
        this.driver = driver;
        this.comm = comm;
        this.name = name;
    }

    /**
     * Wraps a communicator that NCCL has just started creating ({@code ncclCommInitRankConfig},
     * {@code ncclCommSplit}) and polls it until ready. If creation fails or outlives the
     * deadline, the half-built communicator is aborted and the failure thrown.
     */
    static NcclHandle open(NcclDriver driver, String name, String what, int status, long comm, long deadlineNanos) {
        if (comm == 0) {
            throw failure(driver, status == NcclDriver.SUCCESS || status == NcclDriver.IN_PROGRESS
                    ? NcclDriver.INTERNAL_ERROR : status, what + " (no communicator returned)");
        }
        NcclHandle h = new NcclHandle(driver, comm, name);
        try {
            h.settle(status, what, deadlineNanos);
            return h;
        } catch (CommTimeoutException e) {
            h.abort();
            throw new CommTimeoutException(e.getMessage() + "; aborted");
        } catch (RuntimeException e) {
            h.abort();
            throw e;
        }
    }

    State state() {
        return state;
    }

    String name() {
        return name;
    }

    /**
     * Runs one NCCL call on this communicator under the lock and returns its raw status.
     * Throws {@link CommAbortedException} without calling NCCL once the handle is no
     * longer live.
     */
    int call(String what, LongToIntFunction nativeCall) {
        lock.lock();
        try {
            ensureLive(what);
            return nativeCall.applyAsInt(comm);
        } finally {
            lock.unlock();
        }
    }

    /**
     * Runs a whole NCCL group, {@code ncclGroupStart}, {@code calls} in order, then
     * {@code ncclGroupEnd}, under the lock, so no abort can free the communicator between
     * a queued call and the {@code ncclGroupEnd} that launches it. Returns
     * {@code ncclGroupEnd}'s status for {@link #settle}; a failed call still ends the
     * group and is then thrown.
     */
    int group(String what, LongToIntFunction... calls) {
        lock.lock();
        try {
            ensureLive(what);
            int st = driver.groupStart();
            if (st != NcclDriver.SUCCESS) {
                throw failure(driver, st, "ncclGroupStart for " + what + " on " + name);
            }
            CommException first = null;
            int end;
            try {
                for (LongToIntFunction c : calls) {
                    int s = c.applyAsInt(comm);
                    // inside a group NCCL only queues; ncclInProgress is settled after ncclGroupEnd
                    if (s != NcclDriver.SUCCESS && s != NcclDriver.IN_PROGRESS) {
                        first = failure(driver, s, what + " on " + name);
                        break;
                    }
                }
            } finally {
                end = driver.groupEnd();
            }
            if (first != null) {
                throw first;
            }
            return end;
        } finally {
            lock.unlock();
        }
    }

    /** {@link #call} then {@link #settle}: a call that returned {@code ncclInProgress} is polled to its end. */
    void issue(String what, long deadlineNanos, LongToIntFunction nativeCall) {
        settle(call(what, nativeCall), what, deadlineNanos);
    }

    /** Success returns; {@code ncclInProgress} is polled until it leaves that state; anything else throws. */
    void settle(int status, String what, long deadlineNanos) {
        if (status == NcclDriver.SUCCESS) {
            return;
        }
        if (status != NcclDriver.IN_PROGRESS) {
            throw failure(driver, status, what + " on " + name);
        }
        awaitSettled(what, deadlineNanos);
    }

    /**
     * Polls {@code ncclCommGetAsyncError} until the state leaves {@code ncclInProgress}.
     * Throws {@link CommTimeoutException} at the deadline (the caller aborts), the mapped
     * exception for an error state, and {@link CommAbortedException} if another thread
     * aborts the handle meanwhile.
     */
    void awaitSettled(String what, long deadlineNanos) {
        Backoff backoff = new Backoff();
        while (asyncState(what) == NcclDriver.IN_PROGRESS) {
            if (System.nanoTime() - deadlineNanos > 0) {
                throw new CommTimeoutException(what + " on " + name + " was still in progress at its deadline");
            }
            backoff.pause();
        }
    }

    /** One poll: {@code ncclSuccess} or {@code ncclInProgress}; an error state throws. */
    int asyncState(String what) {
        int[] state = new int[1];
        int st = call(what, c -> driver.commGetAsyncError(c, state));
        if (st != NcclDriver.SUCCESS) {
            throw failure(driver, st, "ncclCommGetAsyncError during " + what + " on " + name);
        }
        if (state[0] != NcclDriver.SUCCESS && state[0] != NcclDriver.IN_PROGRESS) {
            throw failure(driver, state[0], what + " on " + name);
        }
        return state[0];
    }

    /**
     * Aborts the communicator if it is still live; returns whether this call did it.
     * Waits at most for one short NCCL call in progress on another thread.
     */
    boolean abort() {
        lock.lock();
        try {
            if (state != State.LIVE) {
                return false;
            }
            state = State.ABORTED;
            driver.commAbort(comm);
            return true;
        } finally {
            lock.unlock();
        }
    }

    /**
     * Finalizes and destroys a live communicator, waiting at most {@code timeoutMs} for
     * the finalize. If the finalize fails or times out, or the handle is aborted while it
     * runs, the communicator is aborted (or left aborted), never destroyed. A handle that
     * is already aborted or destroyed is left alone. Returns the final state.
     */
    State release(long timeoutMs) {
        long deadline = System.nanoTime() + Math.max(0, timeoutMs) * 1_000_000L;
        try {
            issue("ncclCommFinalize", deadline, driver::commFinalize);
        } catch (CommException e) {
            abort();
            return state;
        }
        lock.lock();
        try {
            if (state == State.LIVE) {
                state = State.DESTROYED;
                driver.commDestroy(comm);
            }
            return state;
        } finally {
            lock.unlock();
        }
    }

    private void ensureLive(String what) {
        State s = state;
        if (s != State.LIVE) {
            throw new CommAbortedException(what + " cannot run: the NCCL communicator " + name + " is "
                    + s.name().toLowerCase());
        }
    }

    /** The exception for an NCCL error status: peer and system failures abort the communicator. */
    static CommException failure(NcclDriver driver, int status, String what) {
        String detail;
        try {
            detail = driver.errorString(status);
        } catch (RuntimeException e) {
            detail = "ncclResult " + status;
        }
        NativeStatus category = category(status);
        String message = category == NativeStatus.PEER_FAILURE
                ? "peer failure in " + what + ": " + detail + " (ncclResult " + status + ")"
                : what + " failed: " + detail + " (ncclResult " + status + ")";
        // category() yields only communication categories, whose exceptions are CommExceptions
        return (CommException) CommStatus.exception(category, message);
    }

    /**
     * The status category of an {@code ncclResult_t} error: a remote or system error is a
     * peer failure (the communicator is aborted); every other error, invalid arguments
     * and usage included, is an internal comm failure, since Java checked the arguments
     * before the call.
     */
    static NativeStatus category(int ncclResult) {
        return ncclResult == NcclDriver.REMOTE_ERROR || ncclResult == NcclDriver.SYSTEM_ERROR
                ? NativeStatus.PEER_FAILURE : NativeStatus.INTERNAL;
    }

    /**
     * Waits between polls: a few spins for latency, then parks that double from 10 us to
     * 1 ms, so a long collective costs about a thousand polls a second, not a core.
     * One per wait; not thread-safe.
     */
    static final class Backoff {
        static final int SPINS = 32;
        static final long MIN_PARK_NANOS = 10_000;
        static final long MAX_PARK_NANOS = 1_000_000;
        private int spins;
        private long park = MIN_PARK_NANOS;

        void pause() {
            if (spins < SPINS) {
                spins++;
                Thread.onSpinWait();
                return;
            }
            LockSupport.parkNanos(park);
            park = Math.min(MAX_PARK_NANOS, park * 2);
        }
    }
}
