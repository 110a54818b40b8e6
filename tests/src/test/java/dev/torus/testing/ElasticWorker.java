package dev.torus.testing;

import dev.torus.Device;
import dev.torus.comm.CommException;
import dev.torus.comm.ReduceOp;
import dev.torus.elastic.ElasticGroup;
import dev.torus.elastic.ElasticOptions;
import dev.torus.elastic.ElasticSampler;
import dev.torus.elastic.ElasticState;
import dev.torus.elastic.MembershipChange;
import dev.torus.memory.Allocator;
import dev.torus.nn.AdamW;
import dev.torus.nn.Mlp;
import dev.torus.nn.Parameter;
import dev.torus.rendezvous.ZooKeeperStore;
import dev.torus.tensor.Tensor;
import java.time.Duration;

/**
 * A worker process of an elastic job, for real-process tests: it joins the group, takes
 * the committed state, and trains a small MLP with gradients computed from its shard
 * of each global batch (a deterministic function of the sample index), summed over the
 * group; it commits every step and prints {@code STEP <step> WORLD <n> HASH <hash>}, and
 * {@code CHANGE ...} for every membership change.
 * Environment: TORUS_RDZV_ENDPOINT, TORUS_RUN_ID, ELASTIC_MIN, ELASTIC_MAX, ELASTIC_STEPS.
 */
public final class ElasticWorker {
    private static final int BATCH = 24;

    public static void main(String[] args) throws Exception {
        String endpoint = System.getenv("TORUS_RDZV_ENDPOINT");
        ElasticOptions opts = new ElasticOptions(System.getenv("TORUS_RUN_ID"), Integer.parseInt(System.getenv("ELASTIC_MIN")),
                Integer.parseInt(System.getenv("ELASTIC_MAX")), Duration.ofMillis(800), Duration.ofSeconds(10),
                Duration.ofSeconds(30));
        int steps = Integer.parseInt(System.getenv("ELASTIC_STEPS"));
        try (ZooKeeperStore store = ZooKeeperStore.connect(endpoint, "store", Duration.ofSeconds(10));
             Allocator alloc = Allocator.root("elastic-worker");
             Mlp mlp = new Mlp(8, 16, 2, 4, 0f, Device.cpu(), alloc, 1);
             AdamW opt = new AdamW(mlp.parameters(), 1e-2f, alloc);
             ElasticGroup g = ElasticGroup.join(store, opts, Duration.ofSeconds(60))) {
            ElasticSampler sampler = new ElasticSampler(500, 3, true);
            ElasticState state = new ElasticState(mlp.parameters(), opt, sampler);
            System.out.println("JOINED id " + g.id() + " generation " + g.generation() + " running " + g.joinedRunning());
            if (!g.joinedRunning()) {
                state.commit();
            }
            state.sync(g.comm(), 0, alloc);
            while (state.step() < steps) {
                MembershipChange c = g.boundary();
                if (c != null) {
                    System.out.println("CHANGE " + c);
                    if (!g.isMember()) {
                        System.out.println("LEFT");
                        return;
                    }
                    if (c.failure()) {
                        state.restore();
                    }
                    if (c.needsStateSync()) {
                        state.sync(g.comm(), 0, alloc);
                        continue;
                    }
                }
                try {
                    int[] mine = sampler.shard(BATCH, g.comm().rank(), g.comm().size());
                    for (Parameter p : mlp.parameters()) {
                        float[] grad = new float[(int) p.numel()];
                        for (int i : mine) {
                            for (int k = 0; k < grad.length; k++) {
                                grad[k] += ((i * 31 + k) % 17 - 8) * 1e-3f;
                            }
                        }
                        try (Tensor t = Tensor.fromArray(grad, p.value().shape())) {
                            g.comm().allReduce(t, ReduceOp.SUM).await();
                            p.grad().copyFrom(t);
                        }
                    }
                    opt.step();
                    sampler.advance(BATCH);
                    state.setStep(state.step() + 1);
                    state.commit();
                    System.out.println("STEP " + state.step() + " WORLD " + g.comm().size() + " HASH "
                            + state.committedHash().substring(0, 16));
                    Thread.sleep(60);
                } catch (CommException e) {
                    MembershipChange r = g.recover(e);
                    System.out.println("CHANGE " + r);
                    if (!g.isMember()) {
                        System.out.println("FENCED");
                        System.exit(3);
                    }
                    state.restore();
                    state.sync(g.comm(), 0, alloc);
                }
            }
            System.out.println("DONE " + state.step() + " HASH " + state.committedHash());
        }
    }
}
