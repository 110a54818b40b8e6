package dev.torus.comm;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/** The collective lane's contract with the code that frees native state after it stops. */
class LaneTest {
    @Test
    void laneHasNotStoppedWhileAHelpingCallerStillRunsItsTask() throws Exception {
        for (int attempt = 0; attempt < 200; attempt++) {
            Lane lane = new Lane("lane-test-" + attempt);
            CountDownLatch started = new CountDownLatch(1);
            CountDownLatch release = new CountDownLatch(1);
            AtomicReference<Thread> ranOn = new AtomicReference<>();
            CompletableFuture<Thread> helperThread = new CompletableFuture<>();
            Lane.Task[] task = new Lane.Task[1];
            Thread h = new Thread(() -> {
                helperThread.complete(Thread.currentThread());
                lane.helpRun(task[0]);
            }, "lane-test-helper");
            task[0] = lane.submit(() -> {
                ranOn.set(Thread.currentThread());
                started.countDown();
                try {
                    release.await(10, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            });
            h.start();
            assertTrue(started.await(10, TimeUnit.SECONDS));
            if (ranOn.get() != helperThread.get(10, TimeUnit.SECONDS)) {
                release.countDown(); // the lane's own thread won the race; try again
                lane.shutdown();
                assertTrue(lane.awaitTermination(10, TimeUnit.SECONDS));
                h.join(10_000);
                continue;
            }
            lane.shutdown();
            assertFalse(lane.awaitTermination(200, TimeUnit.MILLISECONDS),
                    "the lane reported itself stopped while a helping caller was still running its task");
            release.countDown();
            assertTrue(lane.awaitTermination(10, TimeUnit.SECONDS));
            h.join(10_000);
            return;
        }
        throw new AssertionError("in 200 attempts a helping caller never got to run the task");
    }
}
