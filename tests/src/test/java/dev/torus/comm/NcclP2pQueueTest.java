package dev.torus.comm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * NCCL's send/recv deferral on CPU: what is issued in one group, and when. A simulated
 * rank runs a real {@link Lane}; its "NCCL" posts a group's operations together and then
 * blocks until each has met its peer's matching operation, which is how NCCL behaves
 * for messages too large to be buffered.
 */
class NcclP2pQueueTest {
    static final Duration T = Duration.ofSeconds(5);

    /** Operations posted by all simulated ranks: "send 0->1", "recv 0->1" (src->dst). */
    final Set<String> posted = ConcurrentHashMap.newKeySet();
    final List<Lane> lanes = Collections.synchronizedList(new ArrayList<>());

    @AfterEach
    void stopLanes() throws InterruptedException {
        for (Lane l : lanes) {
            l.shutdown();
            l.awaitTermination(5, TimeUnit.SECONDS);
        }
    }

    /** One simulated rank: a lane, and a target that records the groups it issues. */
    final class Rank implements NcclP2pQueue.Target {
        final int rank;
        final Lane lane;
        final NcclP2pQueue queue = new NcclP2pQueue(this);
        final List<List<String>> groups = Collections.synchronizedList(new ArrayList<>());
        final AtomicInteger released = new AtomicInteger();
        volatile RuntimeException issueFailure;
        volatile int refuseNth = -1;
        private int submitted;

        Rank(int rank) {
            this.rank = rank;
            this.lane = new Lane("p2p-test-r" + rank);
            lanes.add(lane);
        }

        Work send(int dst) {
            return queue.defer(OpType.SEND, dst, null, released::incrementAndGet, "send " + rank + "->" + dst, T);
        }

        Work recv(int src) {
            return queue.defer(OpType.RECV, src, null, released::incrementAndGet, "recv " + src + "->" + rank, T);
        }

        @Override
        public Work submit(NcclP2pQueue.Deferred d, NcclP2pQueue.Group group) {
            if (submitted++ == refuseNth) {
                throw new IllegalStateException("communicator is closed");
            }
            WorkImpl w = new WorkImpl(submitted, d.type, d.toString(), T);
            Lane.Task task = lane.submit(() -> {
                try {
                    group.runFor(T.toMillis());
                    w.complete();
                } catch (CommException e) {
                    w.fail(e);
                }
            });
            w.helpWith(lane, task);
            return w;
        }

        @Override
        public void issue(List<NcclP2pQueue.Deferred> live, long timeoutMs) {
            if (issueFailure != null) {
                throw issueFailure;
            }
            List<String> names = live.stream().map(Object::toString).toList();
            groups.add(names);
            posted.addAll(names);
            long deadline = System.nanoTime() + timeoutMs * 1_000_000L;
            for (String op : names) {
                String peerOp = op.startsWith("send") ? op.replace("send", "recv") : op.replace("recv", "send");
                while (!posted.contains(peerOp)) {
                    if (System.nanoTime() > deadline) {
                        throw new CommTimeoutException(op + " never met " + peerOp);
                    }
                    Thread.onSpinWait();
                }
            }
        }
    }

    @Test
    void sendAndRecvAreIssuedTogetherOnlyWhenOneOfThemIsAwaited() {
        Rank r = new Rank(0);
        Rank peer = new Rank(1);
        Work s = r.send(1);
        Work v = r.recv(1);
        assertTrue(r.groups.isEmpty(), "nothing is issued before a Work is queried");
        assertEquals(OpType.SEND, s.opType());
        Work ps = peer.send(0);
        Work pv = peer.recv(0);
        pv.isCompleted(); // any query flushes
        v.await(T);
        s.await(T);
        ps.await(T);
        pv.await(T);
        assertEquals(List.of(List.of("send 0->1", "recv 1->0")), r.groups);
        assertEquals(2, r.released.get(), "the deferral's pins are released once the lane holds its own");
    }

    @Test
    void ringExchangeWhereEveryRankSendsFirstDoesNotDeadlock() throws Exception {
        int n = 4;
        List<Rank> ranks = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            ranks.add(new Rank(i));
        }
        List<Thread> threads = new ArrayList<>();
        List<Throwable> errors = Collections.synchronizedList(new ArrayList<>());
        // every rank sends to its successor first, then receives from its predecessor (CollectiveBench's pattern)
        for (Rank r : ranks) {
            Thread t = new Thread(() -> {
                try {
                    Work s = r.send((r.rank + 1) % n);
                    Work v = r.recv((r.rank + n - 1) % n);
                    s.await(T);
                    v.await(T);
                } catch (Throwable e) {
                    errors.add(e);
                }
            });
            threads.add(t);
            t.start();
        }
        for (Thread t : threads) {
            t.join(15_000);
        }
        assertTrue(errors.isEmpty(), errors.toString());
        for (Rank r : ranks) {
            assertEquals(1, r.groups.size(), "rank " + r.rank + ": " + r.groups);
            assertEquals(2, r.groups.get(0).size(), "rank " + r.rank + ": " + r.groups);
        }
    }

    @Test
    void flushBeforeAnotherOperationIssuesWhatWasDeferred() {
        Rank r = new Rank(0);
        Rank peer = new Rank(1);
        Work s = r.send(1);
        r.queue.flush(); // what submitCollective does first
        Work pv = peer.recv(0);
        peer.queue.flush();
        s.await(T);
        pv.await(T);
        assertEquals(List.of(List.of("send 0->1")), r.groups);
    }

    @Test
    void failedGroupFailsEveryMember() {
        Rank r = new Rank(0);
        r.issueFailure = new CommAbortedException("peer failure in ncclGroupEnd");
        Work s = r.send(1);
        Work v = r.recv(1);
        assertThrows(CommAbortedException.class, () -> v.await(T));
        assertThrows(CommAbortedException.class, () -> s.await(T));
    }

    @Test
    void memberRefusedByTheLaneIsLeftOutOfTheGroupAndFails() {
        Rank r = new Rank(0);
        Rank peer = new Rank(1);
        r.refuseNth = 1;
        Work s = r.send(1);
        Work v = r.recv(1);
        Work pv = peer.recv(0);
        pv.isCompleted();
        s.await(T);
        CommAbortedException e = assertThrows(CommAbortedException.class, () -> v.await(T));
        assertTrue(e.getMessage().contains("recv 1->0 cannot run"), e.getMessage());
        assertEquals(List.of(List.of("send 0->1")), r.groups);
        assertEquals(2, r.released.get());
        pv.await(T);
    }
}
