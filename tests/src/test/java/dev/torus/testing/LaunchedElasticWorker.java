package dev.torus.testing;

import dev.torus.Device;
import dev.torus.elastic.ElasticLoop;
import dev.torus.elastic.ElasticSampler;
import dev.torus.elastic.ElasticState;
import dev.torus.memory.Allocator;
import dev.torus.nn.AdamW;
import dev.torus.nn.Mlp;
import java.nio.file.Path;

/**
 * A worker for {@code torusrun --elastic}: everything from the environment through
 * {@link ElasticLoop#fromEnv} (SIGTERM is a graceful leave). Trains a small MLP on a synthetic
 * gradient for ELASTIC_STEPS steps, sleeping ELASTIC_SLEEP_MS after each, and prints
 * {@code STEP <step> WORLD <n>}; {@code LEFT} when it left, {@code DONE <step>} at the end.
 * ELASTIC_EVENTS, if set, is a folder for its JSONL events.
 */
public final class LaunchedElasticWorker {
    public static void main(String[] args) throws Exception {
        int steps = Integer.parseInt(System.getenv("ELASTIC_STEPS"));
        long sleep = Long.parseLong(System.getenv().getOrDefault("ELASTIC_SLEEP_MS", "0"));
        String events = System.getenv("ELASTIC_EVENTS");
        try (Allocator alloc = Allocator.root("launched-elastic");
             Mlp mlp = new Mlp(8, 16, 2, 4, 0f, Device.cpu(), alloc, 1);
             AdamW opt = new AdamW(mlp.parameters(), 1e-2f, alloc)) {
            ElasticSampler sampler = new ElasticSampler(400, 3, true);
            ElasticState state = new ElasticState(mlp.parameters(), opt, sampler);
            try (ElasticLoop loop = ElasticLoop.fromEnv(state, alloc, 1, events == null ? null
                    : Path.of(events, "worker-" + ProcessHandle.current().pid() + ".jsonl"))) {
                while (loop.next(steps)) {
                    long before = state.step();
                    loop.step(comm -> ElasticWorker.syntheticStep(comm, sampler, mlp, opt, 16));
                    if (state.step() > before) {
                        System.out.println("STEP " + state.step() + " WORLD " + loop.comm().size());
                        Thread.sleep(sleep);
                    }
                }
                System.out.println(loop.group().isMember() ? "DONE " + state.step() : "LEFT");
            }
        }
    }
}
