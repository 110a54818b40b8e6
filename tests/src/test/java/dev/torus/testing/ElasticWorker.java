package dev.torus.testing;

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

/**
 * A worker process of an elastic job, for real-process tests: it joins the group, takes
 * the committed state, and trains a small MLP with gradients computed from its shard
 * of each global batch (a deterministic function of the sample index), summed over the
 * group, through {@link ElasticLoop}; it commits every step and prints
 * {@code STEP <step> WORLD <n> HASH <hash>}; events go to ELASTIC_EVENTS (JSONL).
 * Environment: TORUS_RDZV_ENDPOINT, TORUS_RUN_ID, ELASTIC_MIN, ELASTIC_MAX, ELASTIC_STEPS,
 * optional ELASTIC_WIDTH (the model's width: another one is another model), ELASTIC_COMMIT_EVERY,
 * ELASTIC_EVENTS and ELASTIC_INIT_MS (how long a joiner waits to be admitted, and each generation's
 * init bound). SIGTERM is a graceful leave. The printed hash is of the live parameters after the step.
 */
public final class ElasticWorker {
    private static final int BATCH = 24;

    public static void main(String[] args) throws Exception {
        String endpoint = System.getenv("TORUS_RDZV_ENDPOINT");
        ElasticOptions opts = new ElasticOptions(System.getenv("TORUS_RUN_ID"), Integer.parseInt(System.getenv("ELASTIC_MIN")),
                Integer.parseInt(System.getenv("ELASTIC_MAX")), Duration.ofMillis(800), Duration.ofSeconds(10),
                Duration.ofMillis(Long.parseLong(System.getenv().getOrDefault("ELASTIC_INIT_MS", "30000"))));
        int steps = Integer.parseInt(System.getenv("ELASTIC_STEPS"));
        int width = Integer.parseInt(System.getenv().getOrDefault("ELASTIC_WIDTH", "16"));
        String events = System.getenv("ELASTIC_EVENTS");
        try (ZooKeeperStore store = ZooKeeperStore.connect(endpoint, "store", Duration.ofSeconds(10));
             Allocator alloc = Allocator.root("elastic-worker");
             Mlp mlp = new Mlp(8, width, 2, 4, 0f, Device.cpu(), alloc, 1);
             AdamW opt = new AdamW(mlp.parameters(), 1e-2f, alloc)) {
            ElasticSampler sampler = new ElasticSampler(500, 3, true);
            ElasticState state = new ElasticState(mlp.parameters(), opt, sampler);
            int commitEvery = Integer.parseInt(System.getenv().getOrDefault("ELASTIC_COMMIT_EVERY", "1"));
            try (ElasticLoop loop = ElasticLoop.join(store, opts, state, alloc, commitEvery,
                    events == null ? null : java.nio.file.Path.of(events))) {
                loop.leaveOnSigterm();
                System.out.println("JOINED id " + loop.group().id() + " generation " + loop.group().generation()
                        + " running " + loop.group().joinedRunning() + " step " + state.step());
                while (loop.next(steps)) {
                    long before = state.step();
                    loop.step(comm -> syntheticStep(comm, sampler, mlp, opt, BATCH));
                    if (state.step() > before) {
                        // the live parameters, not the last commit: replicas must agree after every step
                        java.security.MessageDigest md = java.security.MessageDigest.getInstance("SHA-256");
                        for (Parameter p : mlp.parameters()) {
                            md.update(p.value().toByteArray());
                        }
                        System.out.println("STEP " + state.step() + " WORLD " + loop.comm().size() + " HASH "
                                + java.util.HexFormat.of().formatHex(md.digest(), 0, 8));
                        Thread.sleep(60);
                    }
                }
                if (!loop.group().isMember()) {
                    System.out.println("LEFT");
                    return;
                }
                System.out.println("DONE " + state.step() + " HASH " + state.committedHash());
            }
        }
    }

    /**
     * One step on a synthetic gradient: each sample index contributes a fixed pattern, each rank sums its
     * shard, the group sums over ranks; the optimizer steps and the sampler moves on. Deterministic, so
     * that replicas can be compared by hash.
     */
    public static void syntheticStep(dev.torus.comm.Communicator comm, ElasticSampler sampler, Mlp mlp, AdamW opt,
                                     int batch) {
        int[] mine = sampler.shard(batch, comm.rank(), comm.size());
        for (Parameter p : mlp.parameters()) {
            float[] grad = new float[(int) p.numel()];
            for (int i : mine) {
                for (int k = 0; k < grad.length; k++) {
                    grad[k] += ((i * 31 + k) % 17 - 8) * 1e-3f;
                }
            }
            try (Tensor t = Tensor.fromArray(grad, p.value().shape())) {
                comm.allReduce(t, ReduceOp.SUM).await();
                p.grad().copyFrom(t);
            }
        }
        opt.step();
        sampler.advance(batch);
    }
}
