package dev.torus.memory;

import dev.torus.Device;
import dev.torus.NativeLibrary;
import dev.torus.jni.TorusNative;

/**
 * A marker in a CUDA stream, used to wait for work or to time it. The caller
 * owns it and closes it. CUDA only.
 */
public final class Event implements AutoCloseable {
    private final Device device;
    private final long handle;
    private volatile boolean closed;

    private Event(Device device, long handle) {
        this.device = device;
        this.handle = handle;
    }

    /** A new event on a CUDA device; {@code timing} enables {@link #elapsedMillis(Event)}. */
    public static Event create(Device device, boolean timing) {
        if (!device.isCuda()) {
            throw new IllegalArgumentException("device: events need a CUDA device, got " + device);
        }
        device.ensureUsable();
        long[] out = new long[1];
        NativeLibrary.check(TorusNative.torus_event_create(device.ordinal(), timing ? 1 : 0, out), "Event.create");
        return new Event(device, out[0]);
    }

    public Device device() {
        return device;
    }

    long handle() {
        ensureOpen();
        return handle;
    }

    /** Records this event at the current end of {@code stream}. */
    public void record(Stream stream) {
        ensureOpen();
        if (!stream.device().equals(device)) {
            throw new IllegalArgumentException("stream: expected a stream on " + device + ", got " + stream);
        }
        NativeLibrary.check(TorusNative.torus_event_record(device.ordinal(), handle, stream.handle()), "record");
    }

    /** Blocks until the recorded work is done. */
    public void synchronize() {
        ensureOpen();
        NativeLibrary.check(TorusNative.torus_event_synchronize(device.ordinal(), handle), "synchronize");
    }

    /** True when the recorded work is done. */
    public boolean isCompleted() {
        ensureOpen();
        int[] done = new int[1];
        NativeLibrary.check(TorusNative.torus_event_query(device.ordinal(), handle, done), "query");
        return done[0] != 0;
    }

    /** Milliseconds between this event and {@code end}; both must have completed. */
    public float elapsedMillis(Event end) {
        ensureOpen();
        float[] ms = new float[1];
        NativeLibrary.check(TorusNative.torus_event_elapsed_ms(device.ordinal(), handle, end.handle(), ms), "elapsed");
        return ms[0];
    }

    private void ensureOpen() {
        if (closed) {
            throw new IllegalStateException("Event on " + device + " is closed");
        }
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        NativeLibrary.check(TorusNative.torus_event_destroy(device.ordinal(), handle), "close(Event)");
    }
}
