package dev.torus.parallel.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.testing.CommHarness;
import dev.torus.testing.PipelineWorker;
import dev.torus.testing.WorkerProcesses;
import dev.torus.zookeeper.EmbeddedZooKeeper;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** Three pipeline stages as processes; the middle one is killed with SIGKILL mid-run: the others fail within the op timeout. */
@Tag("multiprocess")
class PipelineProcessTest {

    @Test
    void aStageKilledMidStepFailsTheOthersWithinTheOpTimeout() throws Exception {
        String run = CommHarness.uniqueRunId("pipeline-kill");
        List<Process> ps = new ArrayList<>();
        List<List<String>> outs = new ArrayList<>();
        try (EmbeddedZooKeeper zk = EmbeddedZooKeeper.startWithoutAuth()) {
            for (int r = 0; r < 3; r++) {
                ProcessBuilder pb = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                        "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp", WorkerProcesses.classpath(),
                        PipelineWorker.class.getName()).redirectErrorStream(true);
                pb.environment().put("RANK", "" + r);
                pb.environment().put("WORLD_SIZE", "3");
                pb.environment().put("TORUS_RDZV_ENDPOINT", zk.connectString());
                pb.environment().put("TORUS_RUN_ID", run);
                pb.environment().put("TORUS_COMM_TIMEOUT_MS", "8000");
                pb.environment().put("PIPELINE_STEPS", "100000");
                pb.environment().put("PIPELINE_SLEEP_MS", "0");
                Process p = pb.start();
                List<String> out = new CopyOnWriteArrayList<>();
                Thread t = new Thread(() -> {
                    try (BufferedReader rd = new BufferedReader(new InputStreamReader(p.getInputStream(),
                            StandardCharsets.UTF_8))) {
                        for (String l = rd.readLine(); l != null; l = rd.readLine()) {
                            out.add(l);
                        }
                    } catch (Exception ignored) {
                        // gone
                    }
                });
                t.setDaemon(true);
                t.start();
                ps.add(p);
                outs.add(out);
            }
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(90);
            while (outs.stream().anyMatch(o -> o.stream().noneMatch(l -> l.equals("STEP 3")))) {
                assertTrue(System.nanoTime() < deadline, "the pipeline did not run: " + outs);
                Thread.sleep(20);
            }
            ps.get(1).destroyForcibly(); // the middle stage, mid-step (the others step back to back)
            long t0 = System.nanoTime();
            for (int r : new int[] {0, 2}) {
                assertTrue(ps.get(r).waitFor(30, TimeUnit.SECONDS), "stage " + r + " hangs: " + outs.get(r));
                assertEquals(1, ps.get(r).exitValue(), outs.get(r).toString());
            }
            double s = (System.nanoTime() - t0) / 1e9;
            Thread.sleep(200);
            for (int r : new int[] {0, 2}) {
                // the communication failure itself, not a side effect of cleaning up after it
                assertTrue(outs.get(r).stream().anyMatch(l -> l.startsWith("FAILED dev.torus.comm.")),
                        "a clear error: " + outs.get(r));
            }
            System.out.printf("pipeline: stages 0 and 2 failed %.2f s after stage 1 was killed (op timeout 8 s): %s | %s%n",
                    s, last(outs.get(0)), last(outs.get(2)));
            assertTrue(s < 8 + 3, "the error came later than the op timeout: " + s + " s");
        } finally {
            ps.forEach(Process::destroyForcibly);
        }
    }

    private static String last(List<String> out) {
        return out.stream().filter(l -> l.startsWith("FAILED ")).findFirst().orElse("?");
    }
}
