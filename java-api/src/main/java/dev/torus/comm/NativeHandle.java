package dev.torus.comm;

import java.util.function.LongConsumer;

/**
 * A native communicator handle behind a lock, in the manner of c10d's {@code NCCLComm}:
 * it counts the threads using the handle and remembers whether it was aborted or
 * destroyed, so that
 * <ul>
 *   <li>an abort after destroy (or after close) is a no-op, never a use-after-free;</li>
 *   <li>an abort that races an operation only signals it: the handle stays valid
 *       until every user has released it;</li>
 *   <li>destroy waits, within a bound, for the users to leave, and refuses to free a
 *       handle that a thread is still inside (the caller then leaks it, which is safe).</li>
 * </ul>
 * The owning communicator creates one per native handle and calls {@link #destroy} once
 * from its {@code close()}. Thread-safe.
 */
final class NativeHandle {
    private final long address;
    private final String name;
    private int users;
    private boolean aborted;
    private boolean destroyed;

    NativeHandle(long address, String name) {
        this.address = address;
        this.name = name;
    }

    /**
     * Enters the handle for a native call; pair with {@link #release()}. Throws
     * {@link CommAbortedException} once the handle is destroyed.
     */
    synchronized long acquire(String op) {
        if (destroyed) {
            throw new CommAbortedException(op + ": the native handle of " + name + " is already destroyed");
        }
        users++;
        return address;
    }

    synchronized void release() {
        if (users <= 0) {
            throw new IllegalStateException("release without acquire on " + name);
        }
        users--;
        if (users == 0) {
            notifyAll();
        }
    }

    /** Runs {@code body} with the handle held; the common form of {@link #acquire}/{@link #release}. */
    <T> T use(String op, java.util.function.LongFunction<T> body) {
        long h = acquire(op);
        try {
            return body.apply(h);
        } finally {
            release();
        }
    }

    /**
     * Signals the native abort once. Returns false, doing nothing, when the handle was
     * already aborted or destroyed. The abort call itself holds the handle like a user.
     */
    boolean abort(LongConsumer nativeAbort) {
        synchronized (this) {
            if (destroyed || aborted) {
                return false;
            }
            aborted = true;
            users++;
        }
        try {
            nativeAbort.accept(address);
        } finally {
            release();
        }
        return true;
    }

    synchronized boolean isAborted() {
        return aborted;
    }

    synchronized boolean isDestroyed() {
        return destroyed;
    }

    /**
     * Frees the handle once no thread uses it, waiting at most {@code waitMs}. Returns
     * false, freeing nothing, if a user is still inside after that (its native call has
     * not returned; freeing would pull memory from under it). Idempotent.
     */
    boolean destroy(LongConsumer nativeDestroy, long waitMs) {
        synchronized (this) {
            if (destroyed) {
                return true;
            }
            long deadline = System.nanoTime() + waitMs * 1_000_000L;
            while (users > 0) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    return false;
                }
                try {
                    wait(Math.max(1, left / 1_000_000L));
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return false;
                }
            }
            destroyed = true;
        }
        nativeDestroy.accept(address);
        return true;
    }
}
