package dev.torus.testing;

import dev.torus.comm.Communicator;
import dev.torus.rendezvous.Store;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Runs one communicator per thread ("in-process ranks") against a shared store.
 * Every wait is bounded; a rank body that throws fails the whole run with its
 * exception.
 */
public final class CommHarness {
    private static final AtomicInteger RUNS = new AtomicInteger();

    private CommHarness() {}

    public interface RankBody<T> {
        T run(Communicator comm) throws Exception;
    }

    public static String uniqueRunId(String prefix) {
        return prefix + "-" + ProcessHandle.current().pid() + "-" + RUNS.incrementAndGet();
    }

    public static <T> List<T> run(Store store, int world, Duration timeout, RankBody<T> body) throws Exception {
        return run(store, world, timeout, b -> b, body);
    }

    /** As {@link #run(Store, int, Duration, RankBody)}, with extra builder settings for every rank. */
    public static <T> List<T> run(Store store, int world, Duration timeout,
                                  java.util.function.UnaryOperator<dev.torus.comm.CommunicatorBuilder> configure,
                                  RankBody<T> body) throws Exception {
        String runId = uniqueRunId("inproc");
        ExecutorService pool = Executors.newFixedThreadPool(world);
        try {
            List<Future<T>> futures = new ArrayList<>();
            for (int r = 0; r < world; r++) {
                int rank = r;
                futures.add(pool.submit(() -> {
                    try (Communicator c = configure.apply(Communicator.builder().rank(rank).size(world).store(store)
                            .runId(runId).timeout(timeout)).build()) {
                        return body.run(c);
                    }
                }));
            }
            List<T> out = new ArrayList<>();
            long deadline = System.nanoTime() + timeout.multipliedBy(4).plusSeconds(20).toNanos();
            for (Future<T> f : futures) {
                try {
                    out.add(f.get(Math.max(1, deadline - System.nanoTime()), TimeUnit.NANOSECONDS));
                } catch (java.util.concurrent.ExecutionException e) {
                    if (e.getCause() instanceof Exception ex) {
                        throw ex;
                    }
                    throw e;
                } catch (TimeoutException e) {
                    throw new AssertionError("a rank did not finish within the bound", e);
                }
            }
            return out;
        } finally {
            pool.shutdownNow();
            pool.awaitTermination(10, TimeUnit.SECONDS);
        }
    }
}
