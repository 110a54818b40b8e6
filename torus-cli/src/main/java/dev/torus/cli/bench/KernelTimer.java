package dev.torus.cli.bench;

import dev.torus.Device;
import dev.torus.memory.Event;
import dev.torus.memory.Stream;

/**
 * Times a repeated operation on one device: wall-clock for the CPU (the CPU
 * kernels are synchronous), CUDA events on the default stream for a GPU.
 * Runs warm-ups, then batches until a minimum time has passed, and reports the
 * median per-call time of several batches, in seconds.
 */
public final class KernelTimer {
    private final Device device;
    private final double minBatchSeconds;

    public KernelTimer(Device device, double minBatchSeconds) {
        this.device = device;
        this.minBatchSeconds = minBatchSeconds;
    }

    public double secondsPerCall(Runnable op) {
        op.run();
        op.run();
        sync();
        // Find a batch size that takes at least minBatchSeconds.
        int calls = 1;
        double t;
        while (true) {
            t = batch(op, calls);
            if (t >= minBatchSeconds || calls >= 1 << 16) {
                break;
            }
            calls = (int) Math.min(1 << 16, Math.max(calls * 2L, (long) (calls * minBatchSeconds / Math.max(t, 1e-9))));
        }
        double[] samples = new double[5];
        samples[0] = t / calls;
        for (int i = 1; i < samples.length; i++) {
            samples[i] = batch(op, calls) / calls;
        }
        java.util.Arrays.sort(samples);
        return samples[samples.length / 2];
    }

    private double batch(Runnable op, int calls) {
        if (device.isCpu()) {
            long t0 = System.nanoTime();
            for (int i = 0; i < calls; i++) {
                op.run();
            }
            return (System.nanoTime() - t0) * 1e-9;
        }
        Stream s = Stream.defaultStream(device);
        try (Event a = Event.create(device, true); Event b = Event.create(device, true)) {
            a.record(s);
            for (int i = 0; i < calls; i++) {
                op.run();
            }
            b.record(s);
            b.synchronize();
            return a.elapsedMillis(b) * 1e-3;
        }
    }

    private void sync() {
        Stream.defaultStream(device).synchronize();
    }
}
