package dev.torus.serve;

import java.net.URI;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Consumer;

/**
 * The router's view of the replicas: which are registered, which may take a batch, and what each has in
 * flight. A replica is <i>ready</i> when it is registered, has not failed a call and is not draining.
 * Thread-safe (one lock); the dispatcher waits on {@link #monitor()} for a free replica.
 */
public final class ReplicaSet {
    /** One replica as the router sees it. */
    public static final class Replica {
        private final String id;
        private final URI batchUri;
        private final long pid;
        private int inFlightBatches;
        private int inFlightRequests;
        private boolean failed;
        private boolean draining;
        private long batches;
        private long lastDispatch;
        private long failedAt;

        Replica(ReplicaRegistry.Entry e) {
            this.id = e.id();
            this.batchUri = URI.create(e.endpoint() + ReplicaServer.BATCH_PATH);
            this.pid = e.pid();
        }

        public String id() {
            return id;
        }

        public URI batchUri() {
            return batchUri;
        }

        public long pid() {
            return pid;
        }
    }

    private final Object lock = new Object();
    private final Map<String, Replica> replicas = new LinkedHashMap<>();
    private final int slotsPerReplica;
    private volatile Consumer<String> onFirstBatch = id -> { };

    private final String model;

    /**
     * @param slotsPerReplica batches one replica may have in flight at once
     * @param model the {@link ModelDigest} a replica must have registered to get batches
     */
    public ReplicaSet(int slotsPerReplica, String model) {
        if (slotsPerReplica < 1) {
            throw new IllegalArgumentException("slotsPerReplica must be >= 1, got " + slotsPerReplica);
        }
        if (model == null) {
            throw new IllegalArgumentException("model must not be null");
        }
        this.slotsPerReplica = slotsPerReplica;
        this.model = model;
    }

    /** The model digest this set accepts. */
    public String model() {
        return model;
    }

    Object monitor() {
        return lock;
    }

    void onFirstBatch(Consumer<String> c) {
        onFirstBatch = c;
    }

    /**
     * Nanos since {@code id} was marked failed, or -1 when it is not failed (or unknown).
     */
    long failedFor(String id) {
        synchronized (lock) {
            Replica r = replicas.get(id);
            return r == null || !r.failed ? -1 : System.nanoTime() - r.failedAt;
        }
    }

    /** Replaces the registered set: new entries join, missing ones leave (their in-flight calls fail and retry). */
    public void update(List<ReplicaRegistry.Entry> registered) {
        synchronized (lock) {
            Map<String, ReplicaRegistry.Entry> byId = new LinkedHashMap<>();
            for (ReplicaRegistry.Entry e : registered) {
                if (e.model().equals(model)) {
                    byId.put(e.id(), e);
                }
            }
            replicas.keySet().removeIf(id -> !byId.containsKey(id));
            for (ReplicaRegistry.Entry e : byId.values()) {
                Replica r = replicas.get(e.id());
                if (r == null || !r.batchUri.toString().equals(e.endpoint() + ReplicaServer.BATCH_PATH)) {
                    replicas.put(e.id(), new Replica(e));
                }
            }
            lock.notifyAll();
        }
    }

    /**
     * The ready replica with a free slot and the fewest batches in flight, the least recently used among equals
     * (so that load rotates over every ready replica), or null; takes the slot.
     */
    Replica acquire(int requests) {
        synchronized (lock) {
            Replica best = null;
            for (Replica r : replicas.values()) {
                if (!r.failed && !r.draining && r.inFlightBatches < slotsPerReplica
                        && (best == null || r.inFlightBatches < best.inFlightBatches
                        || (r.inFlightBatches == best.inFlightBatches && r.lastDispatch < best.lastDispatch))) {
                    best = r;
                }
            }
            if (best != null) {
                best.inFlightBatches++;
                best.inFlightRequests += requests;
                best.lastDispatch = System.nanoTime();
            }
            return best;
        }
    }

    /** Gives a slot back; {@code ok == false} marks the replica failed until it registers again. */
    void release(Replica r, int requests, boolean ok) {
        boolean first = false;
        synchronized (lock) {
            r.inFlightBatches--;
            r.inFlightRequests -= requests;
            if (!ok) {
                if (!r.failed) {
                    r.failedAt = System.nanoTime();
                }
                r.failed = true;
            } else {
                first = r.batches++ == 0;
            }
            lock.notifyAll();
        }
        if (first) {
            try {
                onFirstBatch.accept(r.id);
            } catch (RuntimeException e) {
                // an observer's failure must not reach the batch that triggered it
            }
        }
    }

    /** Stops sending new batches to {@code id}; returns false when it is unknown. */
    public boolean drain(String id) {
        synchronized (lock) {
            Replica r = replicas.get(id);
            if (r == null) {
                return false;
            }
            r.draining = true;
            return true;
        }
    }

    /** Batches in flight on {@code id}; 0 when unknown. */
    public int inFlightBatches(String id) {
        synchronized (lock) {
            Replica r = replicas.get(id);
            return r == null ? 0 : r.inFlightBatches;
        }
    }

    /** Requests in flight on all replicas. */
    public int inFlightRequests() {
        synchronized (lock) {
            int n = 0;
            for (Replica r : replicas.values()) {
                n += r.inFlightRequests;
            }
            return n;
        }
    }

    /** Ids of the ready replicas. */
    public List<String> ready() {
        synchronized (lock) {
            List<String> ids = new ArrayList<>();
            for (Replica r : replicas.values()) {
                if (!r.failed && !r.draining) {
                    ids.add(r.id);
                }
            }
            return ids;
        }
    }

    public int readyCount() {
        return ready().size();
    }

    /** Ids of every registered replica (ready, draining or failed). */
    public Set<String> registered() {
        synchronized (lock) {
            return Set.copyOf(replicas.keySet());
        }
    }

    Replica replica(String id) {
        synchronized (lock) {
            return replicas.get(id);
        }
    }

    boolean isFailed(String id) {
        synchronized (lock) {
            Replica r = replicas.get(id);
            return r != null && r.failed;
        }
    }

    /** Clears the failed mark of a replica that answered its readiness probe. */
    void recover(String id) {
        synchronized (lock) {
            Replica r = replicas.get(id);
            if (r != null && r.failed) {
                r.failed = false;
                lock.notifyAll();
            }
        }
    }

    /** Marks {@code id} failed (its process is gone); no new batches go there. */
    public void markFailed(String id) {
        synchronized (lock) {
            Replica r = replicas.get(id);
            if (r != null) {
                if (!r.failed) {
                    r.failedAt = System.nanoTime();
                }
                r.failed = true;
                lock.notifyAll();
            }
        }
    }
}
