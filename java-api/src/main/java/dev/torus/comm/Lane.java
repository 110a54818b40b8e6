package dev.torus.comm;

import java.util.ArrayDeque;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * A single-threaded FIFO executor whose tasks can also be run by the thread that
 * waits for them. An operation issued and then awaited at once (the common,
 * synchronous use) runs on the caller's thread when the lane is idle and the task
 * is next in line, saving two thread hand-offs; asynchronous use is unchanged. At
 * most one task of a lane runs at any time, always in submission order.
 */
final class Lane {
    /** A unit of work that runs exactly once, on the lane thread or on a helping waiter. */
    static final class Task {
        private final Runnable body;
        private final AtomicBoolean claimed = new AtomicBoolean();

        Task(Runnable body) {
            this.body = body;
        }

        boolean claim() {
            return claimed.compareAndSet(false, true);
        }
    }

    private static final ThreadLocal<Boolean> LANE_THREAD = ThreadLocal.withInitial(() -> false);

    private final ReentrantLock lock = new ReentrantLock();
    private final Condition changed = lock.newCondition();
    private final ArrayDeque<Task> queue = new ArrayDeque<>();
    private final Thread worker;
    private boolean busy;
    private boolean shutdown;

    Lane(String name) {
        worker = new Thread(this::loop, name);
        worker.setDaemon(true);
        worker.start();
    }

    Task submit(Runnable body) {
        Task t = new Task(body);
        lock.lock();
        try {
            if (shutdown) {
                throw new RejectedExecutionException("lane is shut down");
            }
            queue.add(t);
            changed.signalAll();
        } finally {
            lock.unlock();
        }
        return t;
    }

    /** Runs {@code t} on the calling thread if the lane is idle and {@code t} is next; returns whether it did. */
    boolean helpRun(Task t) {
        lock.lock();
        try {
            if (busy || queue.peekFirst() != t) {
                return false;
            }
            queue.pollFirst();
            busy = true;
        } finally {
            lock.unlock();
        }
        try {
            if (t.claim()) {
                t.body.run();
            }
        } finally {
            finished();
        }
        return true;
    }

    /** True on the worker thread of any lane (not on a caller that helps run a task). */
    static boolean onLaneThread() {
        return LANE_THREAD.get();
    }

    private void loop() {
        LANE_THREAD.set(true);
        while (true) {
            Task t;
            lock.lock();
            try {
                // a helper's task counts as running: the lane has not stopped until it returns, so the
                // owner never frees native state a helping thread is still using
                while ((!shutdown && queue.isEmpty()) || busy) {
                    changed.awaitUninterruptibly();
                }
                if (queue.isEmpty()) {
                    changed.signalAll();
                    return; // shut down and drained
                }
                t = queue.pollFirst();
                busy = true;
            } finally {
                lock.unlock();
            }
            try {
                if (t.claim()) {
                    t.body.run();
                }
            } catch (RuntimeException | Error e) {
                // runOp handles its own failures; anything else must not kill the lane
            } finally {
                finished();
            }
        }
    }

    /** Marks the running task done and wakes the lane thread and helpers. */
    private void finished() {
        lock.lock();
        try {
            busy = false;
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    void shutdown() {
        lock.lock();
        try {
            shutdown = true;
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    boolean awaitTermination(long timeout, TimeUnit unit) throws InterruptedException {
        worker.join(unit.toMillis(timeout));
        return !worker.isAlive();
    }
}
