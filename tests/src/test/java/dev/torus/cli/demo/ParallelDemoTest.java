package dev.torus.cli.demo;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.cli.TorusDemo;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code ./torus demo --parallel} with worker processes through the launcher: DP × PP × TP = 2 × 2 × 2 on 8
 * JVMs (every rank's coordinates and group members checked), and 4-JVM layouts with the interleaved and the
 * zero-bubble schedules; each must end bit for bit equal to one process that runs the same batches (and
 * splits the same GEMMs), with the summary, the Chrome trace and the timeline written.
 */
class ParallelDemoTest {
    @TempDir
    Path dir;

    private String demo(Path out, String... layout) throws Exception {
        String[] common = {"--epochs", "1", "--train-rows", "1024", "--batch", "64", "--width", "32", "--blocks", "2",
                "--target-accuracy", "0", "--out", out.toString()};
        String[] args = new String[layout.length + common.length];
        System.arraycopy(layout, 0, args, 0, layout.length);
        System.arraycopy(common, 0, args, layout.length, common.length);
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        PrintStream saved = System.out;
        int code;
        try (PrintStream capture = new PrintStream(buf, true, StandardCharsets.UTF_8)) {
            System.setOut(capture);
            code = TorusDemo.commandLine().execute(args);
        } finally {
            System.setOut(saved);
        }
        String text = buf.toString(StandardCharsets.UTF_8);
        assertEquals(0, code, text);
        String summary = Files.readString(out.resolve("summary.json"));
        assertTrue(summary.contains("\"reference_equal\":true") && summary.contains("\"bitwise_equal\":true"), summary);
        assertTrue(summary.contains("\"mesh_verified\":true"), summary);
        assertTrue(summary.contains("\"passed\":true"), summary); // includes the first-step loss within 1e-6
        String trace = Files.readString(out.resolve("trace.json"));
        assertTrue(trace.startsWith("{\"traceEvents\":[") && trace.contains("\"ph\":\"X\""), trace);
        assertTrue(Files.size(out.resolve("timeline.png")) > 1000);
        return summary;
    }

    @Test
    @Tag("multiprocess")
    void dpPpTpTwoByTwoByTwoOnEightJvmsIsBitwiseOneProcess() throws Exception {
        String s = demo(dir.resolve("222"), "--parallel", "dp=2,pp=2,tp=2", "--micro-batches", "2");
        assertTrue(s.contains("\"dp\":2,\"pp\":2,\"tp\":2"), s);
        assertEquals(8, s.split("\"rank\":").length - 1, "8 ranks in the mesh: " + s);
        // 1F1B, p = 2, m = 2: stage 0 stashes 2 micro-batches, stage 1 one
        assertTrue(s.contains("\"peak_stashed_micro_batches\":{\"stage_0\":2,\"stage_1\":1}"), s);
    }

    @Test
    @Tag("multiprocess")
    void interleavedAndZeroBubbleLayoutsAreBitwiseOneProcess() throws Exception {
        demo(dir.resolve("interleaved"), "--parallel", "dp=2,pp=2", "--schedule", "interleaved:2", "--micro-batches",
                "2");
        String s = demo(dir.resolve("zb"), "--parallel", "pp=2,tp=2", "--schedule", "zb-h1", "--micro-batches", "4",
                "--policy", "none");
        assertTrue(s.contains("\"schedule\":\"zb-h1\""), s);
    }
}
