package dev.torus.comm;

import java.util.Optional;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Store calls with a hard bound. A store client retries by its own schedule (Curator:
 * exponential backoff across connection loss), which would let a dead or slow ZooKeeper
 * stretch any wait; here each call runs on a daemon thread and the caller stops waiting
 * at its deadline. An abandoned call is interrupted and finishes on its own thread.
 * Thread-safe; the threads are daemons, created on demand and reclaimed when idle.
 */
final class BoundedCalls {
    private static final ExecutorService THREADS = Executors.newCachedThreadPool(r -> {
        Thread t = new Thread(r, "torus-store-call");
        t.setDaemon(true);
        return t;
    });

    private BoundedCalls() {}

    /** Runs {@code task} on a store-call thread without waiting for it. */
    static void async(Runnable task) {
        THREADS.execute(task);
    }

    /** {@code call}'s result, or empty if it failed or had not returned by {@code deadlineNanos}. */
    static <T> Optional<T> attempt(Callable<T> call, long deadlineNanos) {
        try {
            return Optional.ofNullable(run(call, deadlineNanos));
        } catch (TimeoutException | RuntimeException e) {
            return Optional.empty();
        }
    }

    /**
     * {@code call}'s result; its own exception if it failed; {@link CommTimeoutException}
     * naming {@code what} and {@code bound} if it had not returned by {@code deadlineNanos}.
     */
    static <T> T within(Callable<T> call, long deadlineNanos, String what, String bound) {
        try {
            return run(call, deadlineNanos);
        } catch (TimeoutException e) {
            throw new CommTimeoutException(what + " did not finish within " + bound);
        }
    }

    private static <T> T run(Callable<T> call, long deadlineNanos) throws TimeoutException {
        long left = deadlineNanos - System.nanoTime();
        if (left <= 0) {
            throw new TimeoutException();
        }
        Future<T> f = THREADS.submit(call);
        try {
            return f.get(left, TimeUnit.NANOSECONDS);
        } catch (TimeoutException e) {
            f.cancel(true);
            throw e;
        } catch (InterruptedException e) {
            f.cancel(true);
            Thread.currentThread().interrupt();
            throw new CommException("interrupted while waiting for the store");
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException r) {
                throw r;
            }
            throw new CommException("store call failed: " + e.getCause(), e.getCause());
        }
    }
}
