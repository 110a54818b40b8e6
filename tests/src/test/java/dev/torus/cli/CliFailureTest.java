package dev.torus.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import dev.torus.Device;
import java.io.PrintWriter;
import java.io.StringWriter;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

/**
 * The command-line tools answer a bad value or a missing GPU with one line that names the cause and exit code 2,
 * before they start any worker process, and never with a stack trace.
 */
class CliFailureTest {
    private record Result(int code, String err) {}

    private static Result run(CommandLine cl, String... args) {
        StringWriter err = new StringWriter();
        cl.setErr(new PrintWriter(err, true));
        cl.setOut(new PrintWriter(new StringWriter(), true));
        int code = cl.execute(args);
        return new Result(code, err.toString());
    }

    private static void assertOneLine(Result r, String program, String mentions) {
        assertEquals(2, r.code(), r.err());
        assertTrue(r.err().contains(mentions), "'" + r.err() + "' must mention " + mentions);
        assertTrue(r.err().contains(program), "'" + r.err() + "' must name " + program);
        assertFalse(r.err().contains("\tat "), "no stack trace expected, got:\n" + r.err());
    }

    @Test
    void badValuesNameTheOption() {
        assertOneLine(run(TorusBench.commandLine(), "allreduce", "--backend", "mpi"), "torus-bench", "--backend");
        assertOneLine(run(TorusBench.commandLine(), "allreduce", "--backend", "nccl", "--compression", "int8"),
                "torus-bench", "--compression");
        assertOneLine(run(TorusBench.commandLine(), "dp", "--hooks", "zstd"), "torus-bench", "--hooks");
        assertOneLine(run(TorusBench.commandLine(), "recompute", "--dropout", "1.5"), "torus-bench", "--dropout");
        assertOneLine(run(TorusBench.commandLine(), "quant", "--min-time", "0"), "torus-bench", "--min-time");
        assertOneLine(run(TorusBench.commandLine(), "gemm-int8", "--shapes", "128"), "torus-bench", "--shapes");
        assertOneLine(run(TorusBench.commandLine(), "gemm-int8", "--rows", "0"), "torus-bench", "--rows");
        assertOneLine(run(TorusDemo.commandLine(), "--workers", "0"), "torus demo", "--workers");
        assertOneLine(run(TorusDemo.commandLine(), "--target-accuracy", "1.5"), "torus demo", "--target-accuracy");
    }

    @Test
    void serveAndQuantizeModelRefuseBadInputInOneLine(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir)
            throws Exception {
        java.nio.file.Path garbage = dir.resolve("garbage.safetensors");
        java.nio.file.Files.write(garbage, new byte[] {1, 2, 3});
        String missing = dir.resolve("nope.safetensors").toString();
        assertOneLine(run(TorusServe.commandLine(), missing), "torus serve", "MODEL");
        assertOneLine(run(TorusServe.commandLine(), garbage.toString()), "torus serve", "garbage.safetensors");
        assertOneLine(run(TorusServe.commandLine(), garbage.toString(), "--min", "3", "--max", "2"), "torus serve",
                "--max");
        assertOneLine(run(TorusServe.commandLine(), garbage.toString(), "--max-batch", "0"), "torus serve", "--max-batch");
        assertOneLine(run(TorusServe.commandLine(), garbage.toString(), "--port", "70000"), "torus serve", "--port");
        assertOneLine(run(TorusServe.commandLine(), garbage.toString(), "--target-in-flight", "0"), "torus serve",
                "--target-in-flight");
        assertOneLine(run(TorusServe.commandLine(), garbage.toString(), "--panic-window-s", "60"), "torus serve",
                "--panic-window-s");
        assertOneLine(run(TorusServe.commandLine(), garbage.toString(), "--emulate", "5ms"), "torus serve",
                "BASE_MS+PER_ROW_MS");
        assertOneLine(run(TorusServe.commandLine(), garbage.toString(), "--port", "x"), "torus serve", "--port");
        assertOneLine(run(QuantizeModel.commandLine(), missing, dir.resolve("out").toString()), "torus quantize-model",
                "IN");
        assertOneLine(run(QuantizeModel.commandLine(), garbage.toString(), dir.resolve("out").toString()),
                "torus quantize-model", "garbage.safetensors");
        assertOneLine(run(QuantizeModel.commandLine(), garbage.toString(), garbage.toString()), "torus quantize-model",
                "OUT must differ");
        assertOneLine(run(TorusBench.commandLine(), "serve", "--high", "0"), "torus-bench", "> 0");
        assertOneLine(run(TorusZooKeeper.commandLine(), "--bind", "zk.local"), "torus zookeeper", "--bind");
        assertOneLine(run(TorusZooKeeper.commandLine(), "--port", "70000"), "torus zookeeper", "--port");
        assertOneLine(run(TorusZooKeeper.commandLine(), "--port", "x"), "torus zookeeper", "--port");
        assertOneLine(run(TorusBench.commandLine(), "serve", "--emulate", "abc"), "torus-bench", "BASE_MS+PER_ROW_MS");
    }

    @Test
    void elasticDemoOptionsAreCheckedBeforeAnyWorkerStarts() {
        String[][] cases = {
            {"--schedule", "--schedule", "start=2"},
            {"--micro-batch", "--micro-batch", "8"},
            {"--workers", "--elastic", "--workers", "3"},
            {"--hook int8", "--elastic", "--hook", "int8"},
            {"--loss-tolerance", "--elastic", "--loss-tolerance", "0.1"},
            {"--device cpu", "--elastic", "--device", "cuda"},
            {"--micro-batch", "--elastic", "--micro-batch", "0"},
            {"--commit-every", "--elastic", "--commit-every", "0"},
            {"'bogus@3'", "--elastic", "--schedule", "start=2,bogus@3"},
            {"'join@x'", "--elastic", "--schedule", "join@x"},
            {"'kill@9:5'", "--elastic", "--schedule", "start=2,kill@9:5"},
            {"would leave no worker", "--elastic", "--schedule", "start=1,leave@4"},
            {"the step must be in", "--elastic", "--schedule", "start=2,join@100000"},
            {"more than the most", "--elastic", "--schedule", "start=8,join@3"},
            {"empty item", "--elastic", "--schedule", "start=2,,join@3"},
            {"a join takes no rank", "--elastic", "--schedule", "join@3:1"},
        };
        for (String[] c : cases) {
            String[] args = java.util.Arrays.copyOfRange(c, 1, c.length);
            assertOneLine(run(TorusDemo.commandLine(), args), "torus demo", c[0]);
        }
    }

    @Test
    void parallelDemoOptionsAreCheckedBeforeAnyWorkerStarts() {
        String[][] cases = {
            {"dp=, pp= and tp=", "--parallel", "dp=2,xp=2"},
            {"must be >= 1", "--parallel", "dp=0,pp=2"},
            {"pp twice", "--parallel", "pp=2,pp=3"},
            {"positive integer", "--parallel", "tp=two"},
            {"at most 16", "--parallel", "dp=4,pp=4,tp=2"},
            {"--micro-batches must be >= 1", "--parallel", "pp=2", "--micro-batches", "0"},
            {"must split evenly into dp=3", "--parallel", "dp=3,pp=2", "--batch", "256"},
            {"divisible by tp=3", "--parallel", "tp=3", "--batch", "96", "--width", "32"},
            {"needs at least 12 segments", "--parallel", "pp=4", "--schedule", "interleaved:3", "--blocks", "2"},
            {"needs at least 6 segments", "--parallel", "pp=6", "--blocks", "1", "--batch", "96", "--micro-batches", "4"},
            {"needs pp >= 2", "--parallel", "dp=2", "--schedule", "interleaved:2"},
            {"--schedule", "--parallel", "pp=2", "--schedule", "zb-h3"},
            {"--hook must be none", "--parallel", "pp=2", "--hook", "int8"},
            {"--workers does not apply", "--parallel", "pp=2", "--workers", "3"},
            {"cannot be combined", "--parallel", "pp=2", "--elastic"},
            {"--micro-batches needs --parallel", "--micro-batches", "4"},
            {"--device cpu", "--parallel", "pp=2", "--device", "cuda"},
            {"--skip-single does not apply", "--parallel", "pp=2", "--skip-single"},
        };
        for (String[] c : cases) {
            String[] args = java.util.Arrays.copyOfRange(c, 1, c.length);
            assertOneLine(run(TorusDemo.commandLine(), args), "torus demo", c[0]);
        }
    }

    @Test
    void aMissingGpuIsOneLineNotAStackTrace() {
        assumeFalse(Device.isCudaAvailable(), "this host has a GPU");
        assertOneLine(run(TorusBench.commandLine(), "allreduce", "--backend", "nccl", "--nproc", "1"), "torus-bench",
                "CUDA");
        assertOneLine(run(TorusBench.commandLine(), "quant", "--device", "cuda"), "torus-bench", "CUDA");
        assertOneLine(run(TorusBench.commandLine(), "recompute", "--device", "cuda"), "torus-bench", "CUDA");
        assertOneLine(run(TorusBench.commandLine(), "gemm-int8", "--device", "cuda"), "torus-bench", "CUDA");
        assertOneLine(run(TorusDemo.commandLine(), "--device", "cuda"), "torus demo", "CUDA");
    }
}
