package dev.torus.comm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.bytedeco.javacpp.BytePointer;
import org.junit.jupiter.api.Test;

/**
 * The NCCL backend's state logic on CPU: a scripted {@link NcclDriver} returns the
 * result sequences NVIDIA documents for non-blocking communicators, and the tests check
 * what the backend does with them. No GPU and no NCCL library are involved.
 */
class NcclStateLogicTest {
    static final long PRODUCER = 0x7000;
    static final int NOT_READY = NcclDriver.CUDA_ERROR_NOT_READY;
    static final int IN_PROGRESS = NcclDriver.IN_PROGRESS;

    final ScriptedNcclDriver nccl = new ScriptedNcclDriver();

    NcclHandle liveHandle() {
        return new NcclHandle(nccl, nccl.newComm(), "test comm");
    }

    static NcclOpRunner.Call allReduce(ScriptedNcclDriver d) {
        return (c, s) -> d.allReduce(1, 1, 8, dev.torus.DType.FLOAT32, ReduceOp.SUM, c, s);
    }

    // ------------------------------------------------------------------ ncclInProgress

    @Test
    void collectiveReturningInProgressIsPolledUntilSettledBeforeTheEventIsRecorded() {
        NcclHandle h = liveHandle();
        NcclOpRunner runner = new NcclOpRunner(nccl, h, 0);
        nccl.enqueueStatuses.add(IN_PROGRESS);
        nccl.asyncStates.addAll(java.util.List.of(IN_PROGRESS, IN_PROGRESS, IN_PROGRESS, NcclDriver.SUCCESS));
        runner.run("allReduce", 5_000, new long[] {PRODUCER}, allReduce(nccl));

        int enqueue = nccl.indexOf("ncclAllReduce", 0);
        int settled = nccl.indexOf("  -> 0", enqueue);
        int record = nccl.indexOf("cudaEventRecord", enqueue);
        assertTrue(enqueue >= 0 && settled > enqueue, nccl.tail());
        assertTrue(record > settled, "the completion event must be recorded after ncclInProgress settled: " + nccl.tail());
        assertEquals(4, nccl.asyncPolls.get(), "four polls while settling; the event was then already complete");
        assertTrue(nccl.violations.isEmpty(), nccl.violations.stream().limit(5).toList().toString());
    }

    @Test
    void groupEndReturningInProgressIsPolledBeforeTheEventIsRecorded() {
        NcclHandle h = liveHandle();
        NcclOpRunner runner = new NcclOpRunner(nccl, h, 0);
        nccl.groupEndStatus = IN_PROGRESS;
        nccl.asyncStates.addAll(java.util.List.of(IN_PROGRESS, IN_PROGRESS, NcclDriver.SUCCESS));
        runner.run("send/recv", 5_000, new long[] {PRODUCER},
                (c, s) -> nccl.send(1, 1, dev.torus.DType.FLOAT32, 1, c, s),
                (c, s) -> nccl.recv(2, 1, dev.torus.DType.FLOAT32, 1, c, s));

        int start = nccl.indexOf("ncclGroupStart", 0);
        int send = nccl.indexOf("ncclSend", start);
        int recv = nccl.indexOf("ncclRecv", send);
        int end = nccl.indexOf("ncclGroupEnd", recv);
        int settled = nccl.indexOf("  -> 0", end);
        int record = nccl.indexOf("cudaEventRecord", end);
        assertTrue(start >= 0 && send > start && recv > send && end > recv, "paired send/recv in one group: " + nccl.tail());
        assertTrue(settled > end && record > settled, nccl.tail());
        assertEquals(1, nccl.count("ncclGroupStart"));
    }

    @Test
    void asyncErrorWhileInProgressFailsAsPeerFailureAndRecordsNothing() {
        NcclOpRunner runner = new NcclOpRunner(nccl, liveHandle(), 0);
        nccl.enqueueStatuses.add(IN_PROGRESS);
        nccl.asyncStates.addAll(java.util.List.of(IN_PROGRESS, NcclDriver.REMOTE_ERROR));
        CommAbortedException e = assertThrows(CommAbortedException.class,
                () -> runner.run("allReduce", 5_000, new long[] {PRODUCER}, allReduce(nccl)));
        assertTrue(e.getMessage().contains("peer failure") && e.getMessage().contains("allReduce"), e.getMessage());
        assertEquals(-1, nccl.indexOf("cudaEventRecord(" + (0xE000L + 2), 0), "no completion event: " + nccl.tail());
    }

    @Test
    void asyncErrorWhileTheKernelRunsFailsTheOperation() {
        NcclOpRunner runner = new NcclOpRunner(nccl, liveHandle(), 0);
        nccl.eventResults.addAll(java.util.List.of(NOT_READY, NOT_READY));
        nccl.asyncStates.addAll(java.util.List.of(NcclDriver.SUCCESS, NcclDriver.SYSTEM_ERROR));
        assertThrows(CommAbortedException.class,
                () -> runner.run("allReduce", 5_000, new long[] {PRODUCER}, allReduce(nccl)));
    }

    @Test
    void immediateErrorFromAnEnqueueIsMappedWithItsName() {
        NcclOpRunner runner = new NcclOpRunner(nccl, liveHandle(), 0);
        nccl.enqueueStatuses.add(NcclDriver.INVALID_ARGUMENT);
        CommException e = assertThrows(CommException.class,
                () -> runner.run("allReduce", 5_000, new long[] {PRODUCER}, allReduce(nccl)));
        assertTrue(e.getMessage().contains("allReduce") && e.getMessage().contains("ncclResult 4"), e.getMessage());
    }

    @Test
    void errorInsideAGroupStillEndsTheGroup() {
        NcclOpRunner runner = new NcclOpRunner(nccl, liveHandle(), 0);
        nccl.enqueueStatuses.add(NcclDriver.INVALID_USAGE);
        assertThrows(CommException.class, () -> runner.run("allToAll", 5_000, new long[] {PRODUCER},
                (c, s) -> nccl.send(1, 1, dev.torus.DType.FLOAT32, 1, c, s),
                (c, s) -> nccl.recv(2, 1, dev.torus.DType.FLOAT32, 1, c, s)));
        assertEquals(1, nccl.count("ncclGroupEnd"), nccl.tail());
    }

    @Test
    void deadlineWhileInProgressTimesOutPromptlyWithoutSpinning() {
        NcclOpRunner runner = new NcclOpRunner(nccl, liveHandle(), 0);
        nccl.enqueueStatuses.add(IN_PROGRESS);
        nccl.asyncDefault = IN_PROGRESS;
        long t0 = System.nanoTime();
        CommTimeoutException e = assertThrows(CommTimeoutException.class,
                () -> runner.run("allReduce", 200, new long[] {PRODUCER}, allReduce(nccl)));
        long ms = (System.nanoTime() - t0) / 1_000_000;
        assertTrue(ms >= 190 && ms < 2_000, "timed out after " + ms + " ms");
        assertTrue(e.getMessage().contains("in progress"), e.getMessage());
        // 32 spins, then parks growing to 1 ms: a few hundred polls in 200 ms, not millions
        assertTrue(nccl.asyncPolls.get() < 1_000, nccl.asyncPolls.get() + " polls in " + ms + " ms");
    }

    @Test
    void waitingForTheKernelBacksOffAndReusesOneStreamAndTwoEvents() {
        NcclOpRunner runner = new NcclOpRunner(nccl, liveHandle(), 0);
        for (int i = 0; i < 5; i++) {
            nccl.eventResults.clear();
            for (int k = 0; k < 150; k++) {
                nccl.eventResults.add(NOT_READY);
            }
            runner.run("allReduce", 10_000, new long[] {PRODUCER}, allReduce(nccl));
        }
        assertEquals(1, nccl.streamsCreated.get());
        assertEquals(2, nccl.eventsCreated.get(), "events are created once and reused");
        assertEquals(0, nccl.setDeviceCalls.get(), "device 0 was already current");
        runner.close();
        assertEquals(2, nccl.count("cudaEventDestroy"));
        assertEquals(1, nccl.count("cudaStreamDestroy"));
    }

    @Test
    void deviceIsSetOncePerLaneThreadAndRestoredForAHelpingCaller() throws Exception {
        NcclOpRunner runner = new NcclOpRunner(nccl, liveHandle(), 3);
        Lane lane = new Lane("nccl-state-test");
        try {
            for (int i = 0; i < 4; i++) {
                CompletableFuture<Void> f = new CompletableFuture<>();
                lane.submit(() -> {
                    try {
                        runner.run("allReduce", 5_000, new long[] {PRODUCER}, allReduce(nccl));
                        f.complete(null);
                    } catch (RuntimeException e) {
                        f.completeExceptionally(e);
                    }
                });
                f.get(10, TimeUnit.SECONDS);
            }
            assertEquals(1, nccl.setDeviceCalls.get(), "one cudaSetDevice for four operations on the lane thread");
        } finally {
            lane.shutdown();
            lane.awaitTermination(5, TimeUnit.SECONDS);
        }
        runner.run("allReduce", 5_000, new long[] {PRODUCER}, allReduce(nccl));
        assertEquals(0, nccl.currentDevice(), "a caller thread gets its own device back");
    }

    @Test
    void commStreamWaitsForTheProducerAndTheProducerForTheCollective() {
        NcclOpRunner runner = new NcclOpRunner(nccl, liveHandle(), 0);
        runner.run("allReduce", 5_000, new long[] {PRODUCER}, allReduce(nccl));
        long comm = 0x5001;
        long ready = 0xE001;
        long done = 0xE002;
        int a = nccl.indexOf("cudaEventRecord(" + ready + ", stream " + PRODUCER + ")", 0);
        int b = nccl.indexOf("cudaStreamWaitEvent(stream " + comm + ", " + ready + ")", a);
        int c = nccl.indexOf("ncclAllReduce(stream " + comm + ")", b);
        int d = nccl.indexOf("cudaEventRecord(" + done + ", stream " + comm + ")", c);
        int e = nccl.indexOf("cudaStreamWaitEvent(stream " + PRODUCER + ", " + done + ")", d);
        assertTrue(a >= 0 && b > a && c > b && d > c && e > d, nccl.tail());
    }

    // ------------------------------------------------------------------ guarded handle

    @Test
    void abortRacingAPollNeverReachesAFreedCommunicator() throws Exception {
        nccl.pollNanos = 20_000;
        for (int i = 0; i < 200; i++) {
            NcclHandle h = liveHandle();
            NcclOpRunner runner = new NcclOpRunner(nccl, h, 0);
            nccl.enqueueStatuses.clear();
            nccl.enqueueStatuses.add(IN_PROGRESS);
            nccl.asyncDefault = IN_PROGRESS;
            CountDownLatch polling = new CountDownLatch(1);
            CompletableFuture<Throwable> failure = CompletableFuture.supplyAsync(() -> {
                polling.countDown();
                try {
                    runner.run("allReduce", 30_000, new long[] {PRODUCER}, allReduce(nccl));
                    return null;
                } catch (RuntimeException e) {
                    return e;
                }
            });
            polling.await();
            if (i % 2 == 0) {
                Thread.sleep(0, 50_000 * (i % 7));
            }
            assertTrue(h.abort());
            Throwable t = failure.get(10, TimeUnit.SECONDS);
            assertTrue(t instanceof CommAbortedException, "run #" + i + " ended with " + t);
            assertFalse(h.abort(), "a second abort is a no-op");
        }
        assertTrue(nccl.violations.isEmpty(), nccl.violations.stream().limit(5).toList().toString());
        assertEquals(200, nccl.count("ncclCommAbort"));
    }

    @Test
    void abortNeverLandsBetweenAGroupsCallsAndItsGroupEnd() throws Exception {
        nccl.enqueueNanos = 2_000_000;
        for (int i = 0; i < 20; i++) {
            NcclHandle h = liveHandle();
            NcclOpRunner runner = new NcclOpRunner(nccl, h, 0);
            int before = (int) nccl.count("ncclSend");
            CompletableFuture<Throwable> failure = CompletableFuture.supplyAsync(() -> {
                try {
                    runner.run("send/recv", 30_000, new long[] {PRODUCER},
                            (c, s) -> nccl.send(1, 1, dev.torus.DType.FLOAT32, 1, c, s),
                            (c, s) -> nccl.recv(2, 1, dev.torus.DType.FLOAT32, 1, c, s));
                    return null;
                } catch (RuntimeException e) {
                    return e;
                }
            });
            while (nccl.count("ncclSend") == before) {
                Thread.onSpinWait();
            }
            h.abort(); // the send is inside NCCL: the abort must wait for ncclGroupEnd
            Throwable t = failure.get(10, TimeUnit.SECONDS);
            assertTrue(t == null || t instanceof CommAbortedException, "run #" + i + " ended with " + t);
        }
        assertTrue(nccl.violations.isEmpty(), nccl.violations.stream().limit(5).toList().toString());
    }

    @Test
    void abortAfterReleaseIsANoOp() {
        NcclHandle h = liveHandle();
        assertEquals(NcclHandle.State.DESTROYED, h.release(1_000));
        assertFalse(h.abort());
        assertEquals(0, nccl.count("ncclCommAbort"));
        assertThrows(CommAbortedException.class, () -> h.asyncState("allReduce"));
        assertTrue(nccl.violations.isEmpty(), nccl.violations.stream().limit(5).toList().toString());
    }

    @Test
    void finalizeInProgressIsPolledThenDestroyed() {
        NcclHandle h = liveHandle();
        nccl.finalizeStatus = IN_PROGRESS;
        nccl.asyncStates.addAll(java.util.List.of(IN_PROGRESS, IN_PROGRESS, NcclDriver.SUCCESS));
        assertEquals(NcclHandle.State.DESTROYED, h.release(5_000));
        assertTrue(nccl.indexOf("ncclCommDestroy", nccl.indexOf("  -> 0", 0)) > 0, nccl.tail());
    }

    @Test
    void finalizeThatTimesOutAbortsAndNeverDestroys() {
        NcclHandle h = liveHandle();
        nccl.finalizeStatus = IN_PROGRESS;
        nccl.asyncDefault = IN_PROGRESS;
        assertEquals(NcclHandle.State.ABORTED, h.release(100));
        assertEquals(1, nccl.count("ncclCommAbort"));
        assertEquals(0, nccl.count("ncclCommDestroy"), nccl.tail());
        assertFalse(h.abort());
        assertEquals(NcclHandle.State.ABORTED, h.release(100), "releasing again touches nothing");
        assertTrue(nccl.violations.isEmpty(), nccl.violations.stream().limit(5).toList().toString());
    }

    @Test
    void abortDuringFinalizeNeverLeadsToDestroy() throws Exception {
        NcclHandle h = liveHandle();
        nccl.finalizeStatus = IN_PROGRESS;
        nccl.asyncDefault = IN_PROGRESS;
        nccl.pollNanos = 20_000;
        CompletableFuture<NcclHandle.State> released = CompletableFuture.supplyAsync(() -> h.release(30_000));
        while (nccl.asyncPolls.get() < 3) {
            Thread.onSpinWait();
        }
        assertTrue(h.abort());
        assertEquals(NcclHandle.State.ABORTED, released.get(10, TimeUnit.SECONDS));
        assertEquals(0, nccl.count("ncclCommDestroy"));
        assertTrue(nccl.violations.isEmpty(), nccl.violations.stream().limit(5).toList().toString());
    }

    @Test
    void releaseOfAnAbortedHandleFinalizesAndDestroysNothing() {
        NcclHandle h = liveHandle();
        assertTrue(h.abort());
        assertEquals(NcclHandle.State.ABORTED, h.release(1_000));
        assertEquals(0, nccl.count("ncclCommFinalize"));
        assertEquals(0, nccl.count("ncclCommDestroy"));
        assertTrue(nccl.violations.isEmpty(), nccl.violations.stream().limit(5).toList().toString());
    }

    @Test
    void initInProgressThenSuccessOpensTheCommunicator() {
        long[] c = new long[1];
        nccl.initStatus = IN_PROGRESS;
        int st = nccl.commInitRank(c, 2, new byte[128], 0);
        nccl.asyncStates.addAll(java.util.List.of(IN_PROGRESS, IN_PROGRESS, NcclDriver.SUCCESS));
        NcclHandle h = NcclHandle.open(nccl, "init", "ncclCommInitRankConfig", st, c[0],
                System.nanoTime() + 5_000_000_000L);
        assertEquals(NcclHandle.State.LIVE, h.state());
        assertEquals(3, nccl.asyncPolls.get());
    }

    @Test
    void initPastItsDeadlineAbortsTheHalfBuiltCommunicator() {
        long[] c = new long[1];
        nccl.initStatus = IN_PROGRESS;
        int st = nccl.commInitRank(c, 2, new byte[128], 0);
        nccl.asyncDefault = IN_PROGRESS;
        CommTimeoutException e = assertThrows(CommTimeoutException.class, () -> NcclHandle.open(nccl, "init",
                "ncclCommInitRankConfig", st, c[0], System.nanoTime() + 100_000_000L));
        assertTrue(e.getMessage().contains("ncclCommInitRankConfig") && e.getMessage().contains("aborted"),
                e.getMessage());
        assertEquals(ScriptedNcclDriver.CommState.ABORTED, nccl.comms.get(c[0]));
    }

    @Test
    void initAsyncErrorAbortsAndReportsIt() {
        long[] c = new long[1];
        nccl.initStatus = IN_PROGRESS;
        int st = nccl.commInitRank(c, 2, new byte[128], 0);
        nccl.asyncStates.addAll(java.util.List.of(IN_PROGRESS, NcclDriver.INTERNAL_ERROR));
        CommException e = assertThrows(CommException.class, () -> NcclHandle.open(nccl, "init",
                "ncclCommInitRankConfig", st, c[0], System.nanoTime() + 5_000_000_000L));
        assertTrue(e.getMessage().contains("ncclResult 3"), e.getMessage());
        assertEquals(ScriptedNcclDriver.CommState.ABORTED, nccl.comms.get(c[0]));
    }

    // ------------------------------------------------------------------ config, device, tags, split

    /** Same shape as the presets' ncclConfig_t: fluent setters of int and pointer fields. */
    public static final class FakeConfig {
        long size;
        int magic;
        int version;
        int blocking;
        int cgaClusterSize;
        int fieldAddedByANewerNccl;
        BytePointer netName = new BytePointer(1);

        public FakeConfig size(long v) {
            size = v;
            return this;
        }

        public FakeConfig magic(int v) {
            magic = v;
            return this;
        }

        public FakeConfig version(int v) {
            version = v;
            return this;
        }

        public FakeConfig blocking(int v) {
            blocking = v;
            return this;
        }

        public FakeConfig cgaClusterSize(int v) {
            cgaClusterSize = v;
            return this;
        }

        public FakeConfig fieldAddedByANewerNccl(int v) {
            fieldAddedByANewerNccl = v;
            return this;
        }

        public FakeConfig netName(BytePointer v) {
            netName = v;
            return this;
        }
    }

    /** A config whose newer field has a type the initializer does not know. */
    public static final class FakeConfigWithLong {
        public FakeConfigWithLong size(long v) {
            return this;
        }

        public FakeConfigWithLong magic(int v) {
            return this;
        }

        public FakeConfigWithLong version(int v) {
            return this;
        }

        public FakeConfigWithLong windowBytes(long v) {
            return this;
        }
    }

    @Test
    void configInitializerLeavesEveryOtherFieldUndefIncludingNewOnes() {
        FakeConfig cfg = new FakeConfig();
        NcclLibrary.applyConfigInitializer(cfg, 96, 0xcafebeef, 22905);
        assertEquals(96, cfg.size);
        assertEquals(0xcafebeef, cfg.magic);
        assertEquals(22905, cfg.version);
        assertEquals(Integer.MIN_VALUE, cfg.blocking);
        assertEquals(Integer.MIN_VALUE, cfg.cgaClusterSize);
        assertEquals(Integer.MIN_VALUE, cfg.fieldAddedByANewerNccl, "a field the code never names is UNDEF, not 0");
        assertNull(cfg.netName);
    }

    @Test
    void configInitializerRefusesAFieldTypeItCannotMakeUndef() {
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> NcclLibrary.applyConfigInitializer(new FakeConfigWithLong(), 96, 0xcafebeef, 22905));
        assertTrue(e.getMessage().contains("windowBytes"), e.getMessage());
    }

    @Test
    void deviceComesFromLocalRankNotTheGlobalRank() {
        assertEquals(1, NcclCommunicator.resolveOrdinal(-1, "1", 5, 8, 4), "rank 5 of 8 with LOCAL_RANK 1");
        assertEquals(2, NcclCommunicator.resolveOrdinal(2, "1", 5, 8, 4), "an explicit cudaDevice wins");
        assertEquals(3, NcclCommunicator.resolveOrdinal(-1, null, 3, 4, 4), "one node: the rank names the device");
        IllegalArgumentException missing = assertThrows(IllegalArgumentException.class,
                () -> NcclCommunicator.resolveOrdinal(-1, null, 5, 8, 4));
        assertTrue(missing.getMessage().contains("LOCAL_RANK must be set"), missing.getMessage());
        IllegalArgumentException tooBig = assertThrows(IllegalArgumentException.class,
                () -> NcclCommunicator.resolveOrdinal(-1, "4", 4, 8, 4));
        assertTrue(tooBig.getMessage().contains("LOCAL_RANK = 4") && tooBig.getMessage().contains("[0, 4)"),
                tooBig.getMessage());
        IllegalArgumentException bad = assertThrows(IllegalArgumentException.class,
                () -> NcclCommunicator.resolveOrdinal(-1, "x", 0, 1, 1));
        assertTrue(bad.getMessage().contains("LOCAL_RANK must be an integer"), bad.getMessage());
    }

    @Test
    void nonZeroTagIsRefusedNamingTheArgument() {
        assertEquals(0, NcclCommunicator.requireTag(0));
        for (int tag : new int[] {1, -1, 7}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> NcclCommunicator.requireTag(tag));
            assertTrue(e.getMessage().startsWith("tag must be 0 on the nccl backend"), e.getMessage());
        }
    }

    @Test
    void splitPlacementThatDisagreesWithTheStoreIsAnError() {
        NcclCommunicator.checkSplitPlacement(3, 1, 3, 1, "child");
        CommException e = assertThrows(CommException.class,
                () -> NcclCommunicator.checkSplitPlacement(3, 2, 3, 1, "child"));
        assertTrue(e.getMessage().contains("placed this rank at 2 of 3"), e.getMessage());
    }
}
