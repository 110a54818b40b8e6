package dev.torus.cli.bench;

import dev.torus.Device;
import dev.torus.comm.ReduceOp;
import dev.torus.elastic.ElasticLoop;
import dev.torus.elastic.ElasticOptions;
import dev.torus.elastic.ElasticSampler;
import dev.torus.elastic.ElasticState;
import dev.torus.memory.Allocator;
import dev.torus.nn.AdamW;
import dev.torus.nn.Mlp;
import dev.torus.nn.Parameter;
import dev.torus.zookeeper.ZooKeeperStore;
import dev.torus.tensor.Tensor;
import java.time.Duration;
import java.util.Map;

/**
 * One worker process of {@link ElasticBench}: a tiny MLP trained through
 * {@link ElasticLoop}, printing {@code STEP <step> WORLD <n> T <epoch ms> MS <step ms>}
 * after every step (the bench compares these times across processes of one machine).
 * Environment: TORUS_RDZV_ENDPOINT, TORUS_RUN_ID, ELASTIC_MIN, ELASTIC_MAX, ELASTIC_STEPS,
 * ELASTIC_COMMIT_EVERY and ELASTIC_STEP_SLEEP_MS. SIGTERM is a graceful leave: the worker
 * finishes its step, prints {@code LEAVE T <epoch ms>}, leaves at the boundary and exits 0.
 */
public final class ElasticBenchWorker {
    private static final int BATCH = 32;

    private ElasticBenchWorker() {}

    public static void main(String[] args) throws Exception {
        Map<String, String> env = System.getenv();
        ElasticOptions opts = new ElasticOptions(env.get("TORUS_RUN_ID"), Integer.parseInt(env.get("ELASTIC_MIN")),
                Integer.parseInt(env.get("ELASTIC_MAX")), Duration.ofSeconds(1), Duration.ofSeconds(10),
                Duration.ofSeconds(60));
        long steps = Long.parseLong(env.get("ELASTIC_STEPS"));
        int commitEvery = Integer.parseInt(env.getOrDefault("ELASTIC_COMMIT_EVERY", "1"));
        long sleepMs = Long.parseLong(env.getOrDefault("ELASTIC_STEP_SLEEP_MS", "0"));
        java.util.concurrent.atomic.AtomicBoolean term = new java.util.concurrent.atomic.AtomicBoolean();
        sun.misc.Signal.handle(new sun.misc.Signal("TERM"), sig -> term.set(true));
        try (ZooKeeperStore store = ZooKeeperStore.builder(env.get("TORUS_RDZV_ENDPOINT")).root("store")
                     .connectTimeout(Duration.ofSeconds(10)).build();
             Allocator alloc = Allocator.root("elastic-bench");
             Mlp mlp = new Mlp(16, 64, 2, 8, 0f, Device.cpu(), alloc, 1);
             AdamW opt = new AdamW(mlp.parameters(), 1e-3f, alloc)) {
            ElasticSampler sampler = new ElasticSampler(4096, 3, true);
            ElasticState state = new ElasticState(mlp.parameters(), opt, sampler);
            try (ElasticLoop loop = ElasticLoop.join(store, opts, state, alloc, commitEvery, null)) {
                while (loop.next(steps)) {
                    if (term.get() && !loop.group().leaveRequested()) {
                        System.out.println("LEAVE T " + System.currentTimeMillis());
                        loop.leave();
                    }
                    long before = state.step();
                    long t0 = System.nanoTime();
                    loop.step(comm -> {
                        int[] mine = sampler.shard(BATCH, comm.rank(), comm.size());
                        for (Parameter p : mlp.parameters()) {
                            float[] grad = new float[(int) p.numel()];
                            for (int i : mine) {
                                for (int k = 0; k < grad.length; k += 7) {
                                    grad[k] += ((i * 31 + k) % 17 - 8) * 1e-4f;
                                }
                            }
                            try (Tensor t = Tensor.fromArray(grad, p.value().shape())) {
                                comm.allReduce(t, ReduceOp.SUM).await();
                                p.grad().copyFrom(t);
                            }
                        }
                        opt.step();
                        sampler.advance(BATCH);
                    });
                    if (state.step() > before) {
                        System.out.println("STEP " + state.step() + " WORLD " + loop.comm().size() + " T "
                                + System.currentTimeMillis() + " MS " + (System.nanoTime() - t0) / 1e6);
                        if (sleepMs > 0) {
                            Thread.sleep(sleepMs);
                        }
                    }
                }
            }
            System.out.println("DONE");
        }
    }
}
