package dev.torus.comm;

import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

final class WorkImpl implements Work {
    private final CompletableFuture<Void> future = new CompletableFuture<>();
    private final long seq;
    private final OpType type;
    private final String description;
    private final Duration deadline;

    WorkImpl(long seq, OpType type, String description, Duration opTimeout) {
        this.seq = seq;
        this.type = type;
        this.description = description;
        this.deadline = opTimeout.plusSeconds(2);
    }

    private volatile Lane lane;
    private volatile Lane.Task task;

    /** Lets a waiter run this Work's task itself when its lane is idle (see {@link Lane}). */
    void helpWith(Lane lane, Lane.Task task) {
        this.task = task;
        this.lane = lane;
    }

    void complete() {
        future.complete(null);
    }

    void fail(CommException e) {
        future.completeExceptionally(e);
    }

    String description() {
        return description;
    }

    @Override
    public boolean isCompleted() {
        return future.isDone();
    }

    @Override
    public void await(Duration timeout) {
        if (timeout == null || timeout.isNegative()) {
            throw new IllegalArgumentException("timeout must be a non-negative duration, got " + timeout);
        }
        Lane helpLane = lane;
        Lane.Task helpTask = task;
        // run the task here only if the caller is prepared to wait for the whole operation
        if (helpLane != null && helpTask != null && !future.isDone() && timeout.compareTo(deadline) >= 0) {
            helpLane.helpRun(helpTask);
        }
        try {
            future.get(timeout.toNanos(), TimeUnit.NANOSECONDS);
        } catch (TimeoutException e) {
            throw new CommTimeoutException("await(" + timeout.toMillis() + " ms) ran out before " + description
                    + " completed");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CommException("interrupted while awaiting " + description);
        } catch (ExecutionException e) {
            Throwable c = e.getCause();
            if (c instanceof CommTimeoutException t) {
                throw new CommTimeoutException(t.getMessage());
            }
            if (c instanceof CollectiveMismatchException m) {
                throw new CollectiveMismatchException(m.getMessage());
            }
            if (c instanceof CommAbortedException a) {
                throw new CommAbortedException(a.getMessage());
            }
            if (c instanceof RuntimeException r) {
                throw r;
            }
            throw new CommException(description + " failed: " + c, c);
        }
    }

    @Override
    public void await() {
        await(deadline);
    }

    @Override
    public CompletableFuture<Void> toFuture() {
        return future.copy();
    }

    @Override
    public long seq() {
        return seq;
    }

    @Override
    public OpType opType() {
        return type;
    }

    @Override
    public String toString() {
        return "Work[" + description + (isCompleted() ? ", done" : ", pending") + "]";
    }
}
