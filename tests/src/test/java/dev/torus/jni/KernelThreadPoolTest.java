package dev.torus.jni;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.DType;
import dev.torus.Device;
import dev.torus.NativeLibrary;
import dev.torus.tensor.Tensor;
import dev.torus.quant.QuantSpec;
import dev.torus.quant.QuantizedTensor;
import dev.torus.quant.Quantizer;
import dev.torus.testing.TorusTestBase;
import dev.torus.testing.WorkerProcesses;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/** The CPU kernels' thread pool: concurrent regions, and a size that respects the CPU affinity mask. */
class KernelThreadPoolTest extends TorusTestBase {

    /**
     * A small kernel issued while a large one runs on another thread (the comm lane's quantize
     * during backward) completes without waiting for the large one: regions no longer queue
     * on one mutex. Checked by order, not by time: the small kernel must finish while the
     * large one is still inside its single parallel region.
     */
    @Test
    void aSmallKernelDoesNotQueueBehindALargeOneOnAnotherThread() throws Exception {
        Assumptions.assumeTrue(NativeLibrary.cpuThreads() > 1, "needs a pool of more than one thread");
        long n = 128L << 20; // 512 MiB of fp32: one region of several hundred milliseconds
        QuantSpec spec = QuantSpec.int8Symmetric().blockwise(256);
        try (Tensor big = Tensor.zeros(root, DType.FLOAT32, Device.cpu(), n);
             // large enough to be split into several tasks (a single task runs inline, without a region)
             Tensor small = Tensor.zeros(root, DType.FLOAT32, Device.cpu(), 1 << 20)) {
            AtomicBoolean bigDone = new AtomicBoolean();
            CountDownLatch started = new CountDownLatch(1);
            Thread large = new Thread(() -> {
                started.countDown();
                try (QuantizedTensor q = Quantizer.quantize(big, spec)) {
                    bigDone.set(true);
                }
            });
            large.start();
            started.await();
            Thread.sleep(30); // the large region is now running
            boolean overlapped = false;
            for (int i = 0; i < 20 && !bigDone.get(); i++) {
                try (QuantizedTensor q = Quantizer.quantize(small, spec)) {
                    overlapped |= !bigDone.get();
                }
            }
            large.join(60_000);
            assertTrue(bigDone.get());
            assertTrue(overlapped, "the small quantize only ran after the large one finished");
        }
    }

    /** Under taskset -c 0 the pool has one thread, not one per core of the machine. */
    @Test
    void poolSizeFollowsTheAffinityMask() throws Exception {
        Assumptions.assumeTrue(Files.isExecutable(Path.of("/usr/bin/taskset")), "needs taskset (util-linux)");
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        String out = printCpuThreads(List.of("/usr/bin/taskset", "-c", "0", java));
        assertTrue(out.contains("threads=1"), out);
    }

    /**
     * Inside a cgroup whose CPU quota is one CPU, the pool has one thread even though the
     * affinity mask allows more. Needs root and a writable cgroup v1 cpu hierarchy (as on the
     * CI machines); the group is removed afterwards.
     */
    @Test
    void poolSizeFollowsTheCgroupCpuQuota() throws Exception {
        Path cpu = Path.of("/sys/fs/cgroup/cpu");
        Assumptions.assumeTrue(Files.isWritable(cpu) && Files.exists(cpu.resolve("cpu.cfs_quota_us"))
                && Runtime.getRuntime().availableProcessors() > 1, "needs a writable cgroup v1 cpu hierarchy and 2+ CPUs");
        Path group = cpu.resolve("torus-test-" + ProcessHandle.current().pid());
        Files.createDirectory(group);
        try {
            Files.writeString(group.resolve("cpu.cfs_period_us"), "100000");
            Files.writeString(group.resolve("cpu.cfs_quota_us"), "100000");
            String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
            String script = "echo $$ > '" + group.resolve("cgroup.procs") + "' && exec \"$0\" \"$@\"";
            String out = printCpuThreads(List.of("/bin/sh", "-c", script, java));
            assertTrue(out.contains("threads=1"), out);
        } finally {
            for (int i = 0; i < 50; i++) {
                try {
                    Files.delete(group); // succeeds once the child has exited and left the group
                    break;
                } catch (java.io.IOException busy) {
                    Thread.sleep(100);
                }
            }
        }
    }

    /** Runs {@code launcher} (ending in the java binary) with PrintCpuThreads and returns its output. */
    private static String printCpuThreads(List<String> launcher) throws Exception {
        List<String> cmd = new java.util.ArrayList<>(launcher);
        cmd.addAll(List.of("-cp", WorkerProcesses.classpath(), dev.torus.testing.PrintCpuThreads.class.getName()));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out;
        try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
            out = String.join("\n", r.lines().toList());
        }
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "the child did not exit: " + out);
        assertEquals(0, p.exitValue(), out);
        return out;
    }
}
