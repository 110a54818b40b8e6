package dev.torus.comm;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.DType;
import dev.torus.Device;
import dev.torus.tensor.Tensor;
import dev.torus.memory.Stream;
import dev.torus.zookeeper.EmbeddedZooKeeper;
import dev.torus.zookeeper.ZooKeeperStore;
import dev.torus.testing.CommHarness;
import dev.torus.testing.TorusTestBase;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/** Every bad argument is rejected in Java with a message naming it, before any native call. */
class CommBadInputTest extends TorusTestBase {
    static EmbeddedZooKeeper zk;
    static ZooKeeperStore store;

    @BeforeAll
    static void start() {
        zk = EmbeddedZooKeeper.startWithoutAuth();
        store = ZooKeeperStore.connect(zk.connectString(), "badinput", Duration.ofSeconds(10));
    }

    @AfterAll
    static void stop() {
        store.close();
        zk.close();
    }

    static void rejects(String argName, Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage().contains(argName), "message should name '" + argName + "': " + e.getMessage());
    }

    @Test
    void builderArguments() {
        rejects("rank", () -> Communicator.builder().rank(-1));
        rejects("size", () -> Communicator.builder().size(0));
        rejects("rank must be < size", () -> Communicator.builder().rank(3).size(2).store(store).build());
        rejects("store or an endpoint", () -> Communicator.builder().rank(0).size(1).build());
        rejects("runId", () -> Communicator.builder().runId("a/b"));
        rejects("name", () -> Communicator.builder().name("../x"));
        rejects("generation", () -> Communicator.builder().generation(-1));
        rejects("timeout", () -> Communicator.builder().timeout(Duration.ZERO));
        rejects("endpoint", () -> Communicator.builder().endpoint(""));
        rejects("hostname", () -> Communicator.builder().hostname(" "));
    }

    /**
     * Names that do not resolve used to reach Gloo, which crashed the JVM with SIGSEGV while
     * creating its device. Now each is refused in Java, naming the argument or variable.
     */
    @Test
    void unresolvableOrForeignHostnamesAreRefusedBeforeGloo() {
        for (String bad : new String[] {"no.such.host.invalid", "999.1.1.1", "bad host", "1.2.3", "-x", "a..b"}) {
            rejects("hostname must be a host name or IP address of this machine, got '" + bad + "'",
                    () -> Communicator.builder().hostname(bad));
            Map<String, String> env = new HashMap<>(Map.of("RANK", "0", "WORLD_SIZE", "1", "TORUS_RDZV_ENDPOINT",
                    zk.connectString(), "TORUS_GLOO_HOSTNAME", bad));
            rejects("TORUS_GLOO_HOSTNAME", () -> CommunicatorBuilder.fromEnvironment(env));
        }
        // the wildcard address passes as "local" but Gloo cannot bind to it
        rejects("the wildcard address", () -> Communicator.builder().hostname("0.0.0.0"));
        // a fully qualified name with the root label is fine
        Communicator.builder().hostname("localhost.");
        // resolves, but to no interface of this machine: Gloo could not bind to it
        rejects("no local interface has", () -> Communicator.builder().hostname("192.0.2.1"));
        // the C ABI checks too, for callers that bypass the Java API
        GlooCommunicator.loadNative();
        long[] out = new long[1];
        assertTrue(dev.torus.jni.GlooNative.torus_gloo_create(0, 1, "no.such.host.invalid", 1000, out)
                == dev.torus.jni.GlooNative.ERR_INVALID_ARGUMENT);
        assertTrue(dev.torus.jni.GlooNative.torus_gloo_last_error().contains("does not resolve"),
                dev.torus.jni.GlooNative.torus_gloo_last_error());
        // good names still work
        try (Communicator c = Communicator.builder().rank(0).size(1).store(store).runId(CommHarness.uniqueRunId("host"))
                .hostname("localhost").build()) {
            assertTrue(c.size() == 1);
        }
    }

    @Test
    void environmentVariables() {
        Map<String, String> env = new HashMap<>();
        rejects("RANK", () -> CommunicatorBuilder.fromEnvironment(env));
        env.put("RANK", "zero");
        rejects("RANK must be an integer, got 'zero'", () -> CommunicatorBuilder.fromEnvironment(env));
        env.put("RANK", "0");
        rejects("WORLD_SIZE", () -> CommunicatorBuilder.fromEnvironment(env));
        env.put("WORLD_SIZE", "2");
        rejects("TORUS_RDZV_ENDPOINT", () -> CommunicatorBuilder.fromEnvironment(env));
        env.put("TORUS_RDZV_ENDPOINT", zk.connectString());
        env.put("TORUS_BACKEND", "mpi");
        rejects("TORUS_BACKEND must be 'gloo' or 'nccl', got 'mpi'", () -> CommunicatorBuilder.fromEnvironment(env));
        env.put("TORUS_BACKEND", "GLOO");
        env.put("TORUS_RUN_ID", "bad id");
        rejects("runId", () -> CommunicatorBuilder.fromEnvironment(env));
    }

    @Test
    void operationArguments() throws Exception {
        CommHarness.run(store, 2, Duration.ofSeconds(10), c -> {
            try (Tensor f = Tensor.fromArray(root, new float[] {1, 2, 3, 4}, 4);
                 Tensor three = Tensor.fromArray(root, new float[] {1, 2, 3}, 3);
                 Tensor i = Tensor.fromArray(root, new int[] {1, 2, 3, 4}, 4);
                 Tensor small = Tensor.fromArray(root, new float[] {1, 2}, 2)) {
                rejects("in must not be null", () -> c.allReduce(null, f, ReduceOp.SUM, OpOptions.defaults()));
                rejects("op must not be null", () -> c.allReduce(f, null));
                rejects("out must have the dtype of in (FLOAT32), got INT32",
                        () -> c.allReduce(f, i, ReduceOp.SUM, OpOptions.defaults()));
                rejects("out must have 4 elements", () -> c.allReduce(f, three, ReduceOp.SUM, OpOptions.defaults()));
                rejects("root must be in [0, 2), got 2", () -> c.broadcast(f, 2));
                rejects("root must be in [0, 2), got -1", () -> c.reduce(f, ReduceOp.SUM, -1));
                rejects("out must have 8 elements (size() x in.numel())", () -> c.allGather(f, f));
                rejects("in must have 8 elements (size() x out.numel())", () -> c.reduceScatter(f, f, ReduceOp.SUM));
                rejects("buffer must hold size() = 2 equal blocks",
                        () -> c.allGatherInPlace(three, OpOptions.defaults()));
                rejects("out must not be in", () -> c.allToAll(f, f));
                rejects("dst must differ from this rank", () -> c.send(f, c.rank(), 0));
                rejects("dst must be in [0, 2)", () -> c.send(f, 5, 0));
                rejects("tag must be >= 0", () -> c.recv(f, 1 - c.rank(), -3));
                rejects("options must not be null", () -> c.barrier(null));
                rejects("timeout must be a positive duration", () -> OpOptions.defaults().withTimeout(Duration.ofMillis(-1)));
                if (Device.isCudaAvailable()) {
                    try (Stream s = Stream.create(Device.cuda(0))) {
                        rejects("options.stream", () -> c.barrier(OpOptions.defaults().withStream(s)));
                    }
                }
                Tensor closed = Tensor.fromArray(root, new float[] {1}, 1);
                closed.close();
                assertThrows(IllegalStateException.class, () -> c.allReduce(closed, ReduceOp.SUM));
                rejects("excluded rank", () -> c.shrink(7));
                rejects("is in the excluded list", () -> c.shrink(c.rank()));
                // nothing above reached the wire: the communicator still works
                try (Tensor ok = Tensor.zeros(root, DType.FLOAT32, Device.cpu(), 2)) {
                    c.allReduce(ok, ReduceOp.SUM).await();
                }
                assertTrue(!c.isAborted());
                small.close();
            }
            return null;
        });
    }

    @Test
    void ncclWithoutAGpuExplainsWhy() {
        org.junit.jupiter.api.Assumptions.assumeFalse(Device.isCudaAvailable(), "a GPU is present");
        dev.torus.CudaUnavailableException e = assertThrows(dev.torus.CudaUnavailableException.class,
                () -> Communicator.builder().rank(0).size(1).store(store).backend(Backend.NCCL).build());
        assertTrue(e.getMessage().contains("nccl backend needs a CUDA GPU")
                && e.getMessage().contains(Device.cudaUnavailableCause()), e.getMessage());
    }

    @Test
    void closedCommunicatorRejectsWork() throws Exception {
        CommHarness.run(store, 1, Duration.ofSeconds(10), c -> {
            c.close();
            try (Tensor f = Tensor.fromArray(root, new float[] {1}, 1)) {
                IllegalStateException e = assertThrows(IllegalStateException.class, () -> c.allReduce(f, ReduceOp.SUM));
                assertTrue(e.getMessage().contains("closed"), e.getMessage());
            }
            return null;
        });
    }
}
