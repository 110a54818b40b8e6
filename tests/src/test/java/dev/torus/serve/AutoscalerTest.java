package dev.torus.serve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The autoscaler's rules on a simulated clock: one sample every 100 ms, as the pool takes them. */
class AutoscalerTest {
    private static final long MS = 1_000_000L;

    /** Feeds {@code seconds} of samples from {@code load}, applying every decision; returns the decisions. */
    private static List<Autoscaler.Decision> drive(Autoscaler a, int[] replicas, long[] clock, double seconds,
                                                   java.util.function.DoubleSupplier load) {
        List<Autoscaler.Decision> changes = new ArrayList<>();
        long end = clock[0] + (long) (seconds * 1000) * MS;
        while (clock[0] < end) {
            clock[0] += 100 * MS;
            a.record(clock[0], load.getAsDouble());
            Autoscaler.Decision d = a.decide(clock[0], replicas[0]);
            if (d.changes()) {
                changes.add(d);
                replicas[0] = d.desired();
            }
        }
        return changes;
    }

    @Test
    void aStepLoadScalesUpWithinOneSecondThroughPanicMode() {
        Autoscaler a = new Autoscaler(Autoscaler.Options.defaults(1, 4).withTarget(1.0));
        int[] n = {1};
        long[] t = {0};
        assertTrue(drive(a, n, t, 40, () -> 0.3).isEmpty(), "a light load keeps one replica");
        List<Autoscaler.Decision> d = drive(a, n, t, 1.0, () -> 6.0);
        assertFalse(d.isEmpty(), "no scale-up within 1 s of the step");
        assertTrue(d.get(0).panic(), "the first decision after a 6x burst is a panic decision: " + d.get(0));
        assertTrue(d.get(0).reason().contains("panic"));
        d = drive(a, n, t, 1.0, () -> 6.0);
        assertEquals(4, n[0], "within 2 s of the step, at max: " + d);
    }

    @Test
    void scaleDownWaitsForTheDelayAndGoesOneReplicaAtATime() {
        Autoscaler a = new Autoscaler(Autoscaler.Options.defaults(1, 4).withTarget(1.0));
        int[] n = {1};
        long[] t = {0};
        drive(a, n, t, 5, () -> 3.5);
        assertEquals(4, n[0]);
        // the load drops: panic mode holds for a stable window, then one step per scale-down delay
        List<Autoscaler.Decision> d = drive(a, n, t, 29, () -> 0.2);
        assertTrue(d.isEmpty(), "scaled down inside panic mode or before the delay: " + d);
        d = drive(a, n, t, 60, () -> 0.2);
        assertEquals(3, d.size(), "4 -> 3 -> 2 -> 1: " + d);
        for (Autoscaler.Decision x : d) {
            assertEquals(x.current() - 1, x.desired());
        }
        assertEquals(1, n[0]);
    }

    @Test
    void aNoisyConstantLoadDoesNotFlapFor120Seconds() {
        for (double mean : new double[] {1.4, 2.0, 2.6, 3.0, 3.9}) {
            Autoscaler a = new Autoscaler(Autoscaler.Options.defaults(1, 8).withTarget(1.0));
            int[] n = {1};
            long[] t = {0};
            SplittableRandom r = new SplittableRandom(42);
            // Poisson-like noise: an exponential spread around the mean
            List<Autoscaler.Decision> d = drive(a, n, t, 120, () -> -mean * Math.log(1 - r.nextDouble()) * 0.5 + mean * 0.5);
            assertTrue(d.size() <= 1, "mean " + mean + ": " + d.size() + " changes: " + d);
        }
    }

    @Test
    void warmsUpBeforeDecidingAndClampsToMinAndMax() {
        Autoscaler a = new Autoscaler(Autoscaler.Options.defaults(2, 3));
        a.record(0, 100);
        Autoscaler.Decision d = a.decide(100 * MS, 2);
        assertFalse(d.changes(), d.toString());
        assertTrue(d.reason().startsWith("warming up"));
        assertEquals(2, a.decide(200 * MS, 0).desired(), "below min goes to min at once");
        assertEquals(3, a.decide(200 * MS, 7).desired(), "above max goes to max at once");
    }

    @Test
    void scalesFromZeroOnAnyLoad() {
        Autoscaler a = new Autoscaler(Autoscaler.Options.defaults(0, 2));
        int[] n = {0};
        long[] t = {0};
        assertTrue(drive(a, n, t, 3, () -> 0).isEmpty());
        List<Autoscaler.Decision> d = drive(a, n, t, 1.1, () -> 0.5);
        assertEquals(1, n[0], d.toString());
    }

    @Test
    void decisionsCarryTheirInputs() {
        Autoscaler a = new Autoscaler(Autoscaler.Options.defaults(1, 4).withTarget(2));
        int[] n = {1};
        long[] t = {0};
        Autoscaler.Decision d = drive(a, n, t, 4, () -> 8).get(0);
        String s = d.toString();
        assertTrue(s.contains("replicas 1 -> 4") && s.contains("in-flight mean") && s.contains("samples"), s);
        assertEquals(8.0, d.panicMean(), 1e-9);
    }

    @Test
    void badOptionsAreRefusedByName() {
        assertTrue(assertThrows(IllegalArgumentException.class, () -> Autoscaler.Options.defaults(-1, 2)).getMessage()
                .contains("min"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> Autoscaler.Options.defaults(3, 2)).getMessage()
                .contains("max"));
        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> Autoscaler.Options.defaults(1, 2).withTarget(0)).getMessage().contains("targetInFlight"));
        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> Autoscaler.Options.defaults(1, 2).withWindows(MS, 2 * MS, 0)).getMessage().contains("windows"));
        Autoscaler a = new Autoscaler(Autoscaler.Options.defaults(1, 2));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> a.record(0, Double.NaN)).getMessage()
                .contains("inFlight"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> a.decide(0, -1)).getMessage().contains("current"));
    }
}
