package dev.torus.comm;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * The deferred sends and receives of one NCCL communicator, issued like PyTorch's
 * {@code batch_isend_irecv}. NCCL runs the operations of a communicator one after the
 * other, so a send that waits for its peer's receive blocks everything queued behind
 * it; a send and a receive progress together only inside one
 * {@code ncclGroupStart/End}. So {@link #defer} only records an operation; every
 * operation deferred since the last {@link #flush} is handed to the lane as one group
 * when any of their {@link Work}s is queried or awaited, when another operation is
 * submitted, or at abort and close (the communicator calls {@link #flush} then).
 *
 * <p>The first member of a group to run on the lane issues the whole group; the others
 * then report its outcome. Owned by its communicator; thread-safe.
 */
final class NcclP2pQueue {
    /** What the queue needs from its communicator. */
    interface Target {
        /**
         * Hands one member of a flushed group to the collective lane; the lane task must
         * call {@code group.runFor(timeoutMs)}. Returns the lane's Work (possibly already
         * failed, if the communicator is broken).
         */
        Work submit(Deferred d, Group group);

        /** Issues {@code live} in one NCCL group and waits for it on the GPU; runs on the lane. */
        void issue(List<Deferred> live, long timeoutMs);
    }

    /** A send or recv waiting for its group to be flushed; queries and waits flush it first. */
    final class Deferred implements Work {
        final OpType type;
        final int peer;
        /** The communicator's own description of the operation (tensor, options, stream). */
        final Object payload;
        /** Releases what {@link #defer} took (the tensor's pin) once the lane holds its own. */
        private final Runnable release;
        private final String description;
        private final Duration timeout;
        private volatile Work submitted;
        private volatile boolean accepted;

        Deferred(OpType type, int peer, Object payload, Runnable release, String description, Duration timeout) {
            this.type = type;
            this.peer = peer;
            this.payload = payload;
            this.release = release;
            this.description = description;
            this.timeout = timeout;
        }

        private Work flushed() {
            Work w = submitted;
            if (w == null) {
                flush();
                w = submitted;
            }
            return w;
        }

        @Override
        public boolean isCompleted() {
            return flushed().isCompleted();
        }

        @Override
        public void await(Duration t) {
            flushed().await(t);
        }

        @Override
        public void await() {
            flushed().await();
        }

        @Override
        public CompletableFuture<Void> toFuture() {
            return flushed().toFuture();
        }

        @Override
        public long seq() {
            return flushed().seq();
        }

        @Override
        public OpType opType() {
            return type;
        }

        @Override
        public String toString() {
            return description;
        }
    }

    /** Operations flushed together. */
    final class Group {
        final List<Deferred> members;
        private boolean sealed;
        private boolean issued;
        private RuntimeException failure;

        private Group(List<Deferred> members) {
            this.members = members;
        }

        private synchronized void seal() {
            sealed = true;
            notifyAll();
        }

        /** Runs on the collective lane, once per member that reached it, in submission order. */
        synchronized void runFor(long timeoutMs) {
            while (!sealed) {
                try {
                    wait(); // the flushing thread is still handing members to the lane: microseconds
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new CommException("interrupted while a send/recv group was being flushed");
                }
            }
            if (!issued) {
                issued = true;
                try {
                    target.issue(members.stream().filter(d -> d.accepted).toList(), timeoutMs);
                } catch (RuntimeException e) {
                    failure = e;
                }
            }
            if (failure != null) {
                throw failure;
            }
        }
    }

    private final Target target;
    private final Object lock = new Object();
    private List<Deferred> open = new ArrayList<>();

    NcclP2pQueue(Target target) {
        this.target = target;
    }

    /**
     * Records a send or recv. The caller has validated it and taken what {@code release}
     * gives back (a pin on the tensor), which is released once the op is flushed.
     */
    Work defer(OpType type, int peer, Object payload, Runnable release, String description, Duration timeout) {
        Deferred d = new Deferred(type, peer, payload, release, description, timeout);
        synchronized (lock) {
            open.add(d);
        }
        return d;
    }

    /** Hands every deferred operation to the lane as one group. */
    void flush() {
        synchronized (lock) {
            if (open.isEmpty()) {
                return;
            }
            Group group = new Group(open);
            open = new ArrayList<>();
            try {
                for (Deferred d : group.members) {
                    try {
                        d.submitted = target.submit(d, group);
                        // a Work already done never reached the lane (aborted): its buffer is not the group's to use
                        d.accepted = !d.submitted.isCompleted();
                    } catch (RuntimeException e) {
                        WorkImpl w = new WorkImpl(0, d.type, d.description, d.timeout);
                        w.fail(new CommAbortedException(d.description + " cannot run: " + e.getMessage()));
                        d.submitted = w;
                    } finally {
                        d.release.run();
                    }
                }
            } finally {
                group.seal();
            }
        }
    }
}
