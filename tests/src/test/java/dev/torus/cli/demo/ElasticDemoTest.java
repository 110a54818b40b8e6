package dev.torus.cli.demo;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.cli.TorusDemo;
import dev.torus.recompute.CheckpointPolicy;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code ./torus demo --elastic} with real worker processes (joins, a kill -9 of rank 0 with a
 * rollback, a graceful leave, an adaptive batch), checked bit for bit against its single-process
 * replay; and the replay's arithmetic, which must tell two world-size histories apart.
 */
class ElasticDemoTest {

    @TempDir
    Path dir;

    @Test
    @Tag("multiprocess")
    void workersComeAndGoAndTheResultIsBitwiseTheReplayedSingleProcess() throws Exception {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        PrintStream saved = System.out;
        int code;
        try (PrintStream capture = new PrintStream(buf, true, StandardCharsets.UTF_8)) {
            System.setOut(capture);
            code = TorusDemo.commandLine().execute("--elastic", "--epochs", "6", "--train-rows", "3072", "--batch", "96",
                    "--width", "32", "--blocks", "2", "--micro-batch", "20", "--commit-every", "3", "--step-pause-ms",
                    "40", "--target-accuracy", "0", "--schedule", "start=2,join@3,kill@8:0,leave@14",
                    "--adaptive-batch", "48:768", "--out", dir.toString());
        } finally {
            System.setOut(saved);
        }
        String out = buf.toString(StandardCharsets.UTF_8);
        System.out.println(out.lines().filter(l -> !l.startsWith("world ")).reduce("", (a, b) -> a + b + "\n"));
        assertEquals(0, code, out);
        String summary = Files.readString(dir.resolve("summary.json"));
        assertTrue(summary.contains("\"reference_equal\":true"), summary);
        assertTrue(summary.contains("\"max_param_diff\":0"), summary);
        assertTrue(summary.contains("\"replicas_equal\":true"), summary);
        assertTrue(summary.contains("\"kind\":\"failure\""), "the kill must show as a failure: " + summary);
        assertTrue(summary.contains("\"kind\":\"leave\""), summary);
        assertTrue(summary.contains("\"kind\":\"joined\""), summary);
        assertTrue(Files.size(dir.resolve("loss.png")) > 1000);
        // the surviving history ends with 1 worker (2, +1 joined, -1 killed, -1 left)
        String worlds = summary.substring(summary.indexOf("\"world_per_step\":[") + 18);
        worlds = worlds.substring(0, worlds.indexOf(']'));
        int[] w = Arrays.stream(worlds.split(",")).mapToInt(Integer::parseInt).toArray();
        // an adaptive batch: the steps cover 6 epochs of 3072 samples whatever the batches were
        String batches = summary.substring(summary.indexOf("\"batch_per_step\":[") + 18);
        batches = batches.substring(0, batches.indexOf(']'));
        int[] b = Arrays.stream(batches.split(",")).mapToInt(Integer::parseInt).toArray();
        assertEquals(w.length, b.length);
        assertEquals(6 * 3072, Arrays.stream(b).asLongStream().sum() - overshoot(b, 3072), "samples covered");
        // the join made a world of 3 (its steps may have been rolled back by the kill that followed)
        assertTrue(summary.contains("\"world_after\":3"), summary);
        assertEquals(1, w[w.length - 1], worlds);
    }

    /** Samples a batch list claims beyond the data: each epoch's last step takes only what is left. */
    private static long overshoot(int[] batches, int rows) {
        long over = 0;
        int consumed = 0;
        for (int batch : batches) {
            int take = Math.min(batch, rows - consumed);
            over += batch - take;
            consumed = (consumed + take) % rows;
        }
        return over;
    }

    /** The comparison behind reference_equal: one flipped bit, a -0 for a +0, or a missing value is a difference. */
    @Test
    void theBitwiseComparisonFailsOnAnyDifference() {
        float[] a = {1.5f, -2.25f, 0f, 3e-8f};
        assertEquals(1.0, ElasticDemoRun.compare(a, a.clone())[0]);
        assertEquals(0.0, ElasticDemoRun.compare(a, a.clone())[1]);
        float[] flipped = a.clone();
        flipped[3] = Float.intBitsToFloat(Float.floatToRawIntBits(flipped[3]) ^ 1);
        double[] c = ElasticDemoRun.compare(a, flipped);
        assertEquals(0.0, c[0], "one bit");
        assertTrue(c[1] > 0 && c[1] < 1e-12, "the difference is reported: " + c[1]);
        float[] negZero = a.clone();
        negZero[2] = -0f;
        assertEquals(0.0, ElasticDemoRun.compare(a, negZero)[0], "-0 is not +0 bit for bit");
        assertEquals(0.0, ElasticDemoRun.compare(a, java.util.Arrays.copyOf(a, 3))[0], "a missing value");
    }

    /** The replay is deterministic, and a different world-size history gives different bits: the comparison is not vacuous. */
    @Test
    void theReplayTellsWorldHistoriesApart() {
        int[] a = {1, 2, 2, 3, 3, 2};
        int[] b = {1, 2, 3, 3, 3, 2};
        float[] pa = replay(a);
        assertArrayEquals(pa, replay(a));
        float[] pb = replay(b);
        assertFalse(Arrays.equals(pa, pb), "a different world history must change some bits");
        double gap = 0;
        for (int i = 0; i < pa.length; i++) {
            gap = Math.max(gap, Math.abs(pa[i] - pb[i]));
        }
        // the same mathematics: the histories differ by rounding only
        assertTrue(gap < 1e-4, "gap " + gap);
    }

    private static float[] replay(int[] worlds) {
        try (ElasticDemoModel m = new ElasticDemoModel(16, 2, 30, 7, 1, 1e-2f, 5, 180, 64, CheckpointPolicy.none(),
                "replay-test")) {
            for (int w : worlds) {
                float[][] parts = new float[w][];
                for (int r = 0; r < w; r++) {
                    parts[r] = m.localGradient(r, w);
                }
                m.applyAndStep(ElasticDemoModel.rankOrderedAverage(parts));
            }
            return m.parameterValues();
        }
    }
}
