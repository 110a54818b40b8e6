package dev.torus.comm;

import dev.torus.DType;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Deque;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * A test double for {@link NcclDriver}: returns scripted result sequences of the kind
 * NVIDIA documents for non-blocking communicators, logs every call, and records rule
 * violations (a call on an aborted or destroyed communicator, two calls on one
 * communicator at once). It models no data movement; it exists to drive the backend's
 * state logic on a machine without a GPU. Thread-safe.
 */
final class ScriptedNcclDriver implements NcclDriver {
    enum CommState { LIVE, ABORTED, DESTROYED }

    final List<String> log = Collections.synchronizedList(new ArrayList<>());
    final List<String> violations = Collections.synchronizedList(new ArrayList<>());
    final Map<Long, CommState> comms = new ConcurrentHashMap<>();
    private final Map<Long, AtomicInteger> inside = new ConcurrentHashMap<>();
    private final AtomicInteger nextHandle = new AtomicInteger(0x100);
    private final ThreadLocal<Integer> device = ThreadLocal.withInitial(() -> 0);

    /** States returned by successive ncclCommGetAsyncError calls; when empty, {@link #asyncDefault}. */
    final Deque<Integer> asyncStates = new ArrayDeque<>();
    volatile int asyncDefault = SUCCESS;
    /** Statuses of successive enqueue calls (collectives, send, recv); when empty, SUCCESS. */
    final Deque<Integer> enqueueStatuses = new ArrayDeque<>();
    volatile int groupEndStatus = SUCCESS;
    volatile int initStatus = SUCCESS;
    volatile int finalizeStatus = SUCCESS;
    /** Results of successive cudaEventQuery calls; when empty, {@link #eventDefault}. */
    final Deque<Integer> eventResults = new ArrayDeque<>();
    volatile int eventDefault = CUDA_SUCCESS;
    /** Time each ncclCommGetAsyncError spends inside NCCL, to widen race windows. */
    volatile long pollNanos;
    /** Time each enqueue call spends inside NCCL, to widen race windows. */
    volatile long enqueueNanos;
    /** Communicators with calls queued in the open group of each thread. */
    private final ThreadLocal<List<Long>> openGroup = new ThreadLocal<>();

    final AtomicInteger asyncPolls = new AtomicInteger();
    final AtomicInteger eventQueries = new AtomicInteger();
    final AtomicInteger eventsCreated = new AtomicInteger();
    final AtomicInteger streamsCreated = new AtomicInteger();
    final AtomicInteger setDeviceCalls = new AtomicInteger();

    long newComm() {
        long h = nextHandle.getAndIncrement() * 16L;
        comms.put(h, CommState.LIVE);
        return h;
    }

    private synchronized int next(Deque<Integer> q, int dflt) {
        Integer v = q.pollFirst();
        return v == null ? dflt : v;
    }

    /** Checks NCCL's rules for a call on {@code comm}; returns a token for {@link #leave}. */
    private long enter(String call, long comm) {
        log.add(call);
        CommState s = comms.get(comm);
        if (s == null) {
            violations.add(call + " on unknown communicator " + comm);
        } else if (s != CommState.LIVE) {
            violations.add(call + " on " + s.name().toLowerCase() + " communicator " + comm);
        }
        if (inside.computeIfAbsent(comm, k -> new AtomicInteger()).incrementAndGet() > 1) {
            violations.add(call + " ran concurrently with another call on communicator " + comm);
        }
        return comm;
    }

    private void leave(long comm) {
        inside.get(comm).decrementAndGet();
    }

    private int enqueue(String call, long comm, long stream) {
        enter(call + "(stream " + stream + ")", comm);
        try {
            List<Long> group = openGroup.get();
            if (group != null) {
                group.add(comm);
            }
            if (enqueueNanos > 0) {
                LockSupport.parkNanos(enqueueNanos);
            }
            return next(enqueueStatuses, SUCCESS);
        } finally {
            leave(comm);
        }
    }

    @Override
    public int getUniqueId(byte[] id) {
        log.add("ncclGetUniqueId");
        return SUCCESS;
    }

    @Override
    public int commInitRank(long[] comm, int nranks, byte[] id, int rank) {
        comm[0] = newComm();
        log.add("ncclCommInitRankConfig");
        return initStatus;
    }

    @Override
    public int commSplit(long comm, int color, int key, long[] child) {
        enter("ncclCommSplit", comm);
        try {
            child[0] = color < 0 ? 0 : newComm();
            return next(enqueueStatuses, SUCCESS);
        } finally {
            leave(comm);
        }
    }

    @Override
    public int commGetAsyncError(long comm, int[] state) {
        enter("ncclCommGetAsyncError", comm);
        try {
            asyncPolls.incrementAndGet();
            if (pollNanos > 0) {
                LockSupport.parkNanos(pollNanos);
            }
            state[0] = next(asyncStates, asyncDefault);
            log.add("  -> " + state[0]);
            return SUCCESS;
        } finally {
            leave(comm);
        }
    }

    @Override
    public int commCount(long comm, int[] count) {
        enter("ncclCommCount", comm);
        leave(comm);
        count[0] = 1;
        return SUCCESS;
    }

    @Override
    public int commUserRank(long comm, int[] rank) {
        enter("ncclCommUserRank", comm);
        leave(comm);
        rank[0] = 0;
        return SUCCESS;
    }

    @Override
    public int commFinalize(long comm) {
        enter("ncclCommFinalize", comm);
        leave(comm);
        return finalizeStatus;
    }

    @Override
    public int commDestroy(long comm) {
        enter("ncclCommDestroy", comm);
        leave(comm);
        comms.put(comm, CommState.DESTROYED);
        return SUCCESS;
    }

    @Override
    public int commAbort(long comm) {
        enter("ncclCommAbort", comm);
        leave(comm);
        comms.put(comm, CommState.ABORTED);
        return SUCCESS;
    }

    @Override
    public String errorString(int status) {
        return "scripted ncclResult " + status;
    }

    @Override
    public int groupStart() {
        log.add("ncclGroupStart");
        openGroup.set(new ArrayList<>());
        return SUCCESS;
    }

    @Override
    public int groupEnd() {
        log.add("ncclGroupEnd");
        List<Long> group = openGroup.get();
        openGroup.remove();
        if (group != null) {
            for (long c : group) {
                if (comms.get(c) != CommState.LIVE) {
                    violations.add("ncclGroupEnd launched calls queued on " + comms.get(c).name().toLowerCase()
                            + " communicator " + c);
                }
            }
        }
        return groupEndStatus;
    }

    @Override
    public int allReduce(long send, long recv, long count, DType dt, ReduceOp op, long comm, long stream) {
        return enqueue("ncclAllReduce", comm, stream);
    }

    @Override
    public int broadcast(long send, long recv, long count, DType dt, int root, long comm, long stream) {
        return enqueue("ncclBroadcast", comm, stream);
    }

    @Override
    public int reduce(long send, long recv, long count, DType dt, ReduceOp op, int root, long comm, long stream) {
        return enqueue("ncclReduce", comm, stream);
    }

    @Override
    public int allGather(long send, long recv, long countPerRank, DType dt, long comm, long stream) {
        return enqueue("ncclAllGather", comm, stream);
    }

    @Override
    public int reduceScatter(long send, long recv, long countPerRank, DType dt, ReduceOp op, long comm, long stream) {
        return enqueue("ncclReduceScatter", comm, stream);
    }

    @Override
    public int send(long buf, long count, DType dt, int peer, long comm, long stream) {
        return enqueue("ncclSend", comm, stream);
    }

    @Override
    public int recv(long buf, long count, DType dt, int peer, long comm, long stream) {
        return enqueue("ncclRecv", comm, stream);
    }

    @Override
    public int getDevice(int[] ordinal) {
        ordinal[0] = device.get();
        return CUDA_SUCCESS;
    }

    @Override
    public int setDevice(int ordinal) {
        setDeviceCalls.incrementAndGet();
        device.set(ordinal);
        return CUDA_SUCCESS;
    }

    int currentDevice() {
        return device.get();
    }

    @Override
    public int streamCreate(long[] stream) {
        streamsCreated.incrementAndGet();
        stream[0] = 0x5000L + streamsCreated.get();
        log.add("cudaStreamCreate -> " + stream[0]);
        return CUDA_SUCCESS;
    }

    @Override
    public int streamDestroy(long stream) {
        log.add("cudaStreamDestroy " + stream);
        return CUDA_SUCCESS;
    }

    @Override
    public int eventCreate(long[] event) {
        event[0] = 0xE000L + eventsCreated.incrementAndGet();
        return CUDA_SUCCESS;
    }

    @Override
    public int eventDestroy(long event) {
        log.add("cudaEventDestroy " + event);
        return CUDA_SUCCESS;
    }

    @Override
    public int eventRecord(long event, long stream) {
        log.add("cudaEventRecord(" + event + ", stream " + stream + ")");
        return CUDA_SUCCESS;
    }

    @Override
    public int eventQuery(long event) {
        eventQueries.incrementAndGet();
        return next(eventResults, eventDefault);
    }

    @Override
    public int streamWaitEvent(long stream, long event) {
        log.add("cudaStreamWaitEvent(stream " + stream + ", " + event + ")");
        return CUDA_SUCCESS;
    }

    @Override
    public String cudaErrorString(int status) {
        return "scripted cudaError " + status;
    }

    /** Index of the first log line starting with {@code prefix} at or after {@code from}, or -1. */
    int indexOf(String prefix, int from) {
        synchronized (log) {
            for (int i = Math.max(0, from); i < log.size(); i++) {
                if (log.get(i).startsWith(prefix)) {
                    return i;
                }
            }
        }
        return -1;
    }

    /** The last 40 log lines, for assertion messages. */
    String tail() {
        synchronized (log) {
            return (log.size() > 40 ? "... " : "") + log.subList(Math.max(0, log.size() - 40), log.size());
        }
    }

    long count(String prefix) {
        synchronized (log) {
            return log.stream().filter(l -> l.startsWith(prefix)).count();
        }
    }
}
