package dev.torus.cli.demo;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

class ProgressBarTest {
    @Test
    void aStepPastTheTotalShowsAFullBarInsteadOfThrowing() {
        for (boolean inPlace : new boolean[] {true, false}) {
            ByteArrayOutputStream buf = new ByteArrayOutputStream();
            ProgressBar bar = new ProgressBar(new PrintStream(buf, true, StandardCharsets.UTF_8), "run", inPlace);
            bar.update(5, 10, 0.5f, 100);
            bar.update(12, 10, 0.4f, 100); // one more step than planned (it threw before)
            String out = buf.toString(StandardCharsets.UTF_8);
            assertTrue(out.contains("[" + "=".repeat(30) + "] step 12/10"), out);
            assertTrue(out.contains("ETA 0s"), out);
        }
        ProgressBar bar = new ProgressBar(new PrintStream(new ByteArrayOutputStream()), "run", false);
        assertThrows(IllegalArgumentException.class, () -> bar.update(-1, 10, 0f, 0));
    }
}
