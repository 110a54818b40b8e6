package dev.torus.memory;

import dev.torus.internal.NativeAccess;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

import dev.torus.Device;
import dev.torus.NativeLibrary;
import dev.torus.jni.TorusNative;

/**
 * An ordered queue of device work (a CUDA stream). {@link #defaultStream(Device)}
 * is the device's legacy default stream and is never closed; {@link #create(Device)}
 * makes a non-blocking stream that the caller owns and closes. On the CPU every
 * operation is synchronous and the CPU stream is a no-op marker.
 * A stream may be used from several threads; closing it while in use is an error.
 *
 * <p>An owned stream knows the device buffers allocated on it and the ones that
 * {@linkplain DeviceBuffer#recordStream recorded} it. {@link #close()} refuses, with
 * {@link IllegalStateException} naming them, while buffers allocated on it are open:
 * their stream-ordered free needs the stream, and destroying it first would leave the
 * memory allocated while the allocator reported it released. Buffers that only
 * recorded it get the dependency handed to their own allocation stream.
 */
public final class Stream implements AutoCloseable {
    private static final Stream CPU = new Stream(Device.cpu(), 0, false);
    /** Guards the buffer/stream bookkeeping on both sides (short sections, no blocking calls). */
    static final Object TRACKING = new Object();

    private final Device device;
    private final long handle;
    private final boolean owned;
    /** A view of another library's stream: tracked like an owned one, but never destroyed. */
    private final boolean borrowed;
    private volatile boolean closed;
    /** Buffers allocated on or recorded on this stream; owned streams only; guarded by {@link #TRACKING}. */
    private final Set<DeviceBuffer> buffers = new LinkedHashSet<>();

    private Stream(Device device, long handle, boolean owned) {
        this(device, handle, owned, false);
    }

    private Stream(Device device, long handle, boolean owned, boolean borrowed) {
        this.device = device;
        this.handle = handle;
        this.owned = owned;
        this.borrowed = borrowed;
    }

    /** The default stream of a device; for the CPU, the synchronous CPU stream. */
    public static Stream defaultStream(Device device) {
        if (device.isCpu()) {
            return CPU;
        }
        return new Stream(device, 0, false);
    }

    /**
     * A view of a CUDA stream that another library created (a JCuda {@code cudaStream_t},
     * for example), for Torus's interop modules (see {@link NativeAccess}). Torus never
     * destroys the stream; the library that created it owns it. The view keeps the books
     * of an owned stream, though: {@link #close()} refuses while buffers allocated on it
     * are open, and hands the buffers that recorded it over to their own streams, so close
     * the view (after its buffers) before the owner destroys the stream. Handle 0 is the
     * device's legacy default stream, which is returned as such.
     */
    public static Stream borrow(NativeAccess token, Device device, long handle) {
        NativeAccess.check(token, "Stream.borrow");
        if (device == null || !device.isCuda()) {
            throw new IllegalArgumentException("device: expected a CUDA device, got " + device);
        }
        return handle == 0 ? defaultStream(device) : new Stream(device, handle, true, true);
    }

    /** True for a view of a stream that another library created and destroys. */
    public boolean isBorrowed() {
        return borrowed;
    }

    /** A new non-blocking CUDA stream on {@code device}. */
    public static Stream create(Device device) {
        if (device.isCpu()) {
            return CPU;
        }
        device.ensureUsable();
        long[] out = new long[1];
        NativeLibrary.check(TorusNative.torus_stream_create(device.ordinal(), out), "Stream.create(" + device + ")");
        return new Stream(device, out[0], true);
    }

    public Device device() {
        return device;
    }

    /** The native handle (cudaStream_t), for Torus's own packages (see {@link NativeAccess}); 0 for default streams. */
    public long handle(NativeAccess token) {
        NativeAccess.check(token, "Stream.handle");
        return handle();
    }

    long handle() {
        ensureOpen();
        return handle;
    }

    /** Blocks until all work queued so far has finished. */
    public void synchronize() {
        ensureOpen();
        if (device.isCuda()) {
            NativeLibrary.check(TorusNative.torus_stream_synchronize(device.ordinal(), handle), "synchronize(" + this + ")");
        }
    }

    /** Makes later work on this stream wait for {@code event}. */
    public void waitFor(Event event) {
        ensureOpen();
        if (device.isCuda()) {
            checkSameDevice(event.device());
            NativeLibrary.check(TorusNative.torus_stream_wait_event(device.ordinal(), handle, event.handle()),
                    "waitFor(" + event + ")");
        }
    }

    /**
     * Queues a copy of {@code bytes} bytes from {@code src} at {@code srcOffset} to
     * {@code dst} at {@code dstOffset}. Any pair of host and device buffers works;
     * a copy that touches no GPU runs synchronously on the CPU. Host memory must
     * stay open until the copy completes; pinned host memory makes it truly async.
     */
    public void copy(MemoryBuffer src, long srcOffset, MemoryBuffer dst, long dstOffset, long bytes) {
        ensureOpen();
        src.checkRange("src", srcOffset, bytes);
        dst.checkRange("dst", dstOffset, bytes);
        if (bytes == 0) {
            return;
        }
        Device gpu = src.device().isCuda() ? src.device() : dst.device().isCuda() ? dst.device() : null;
        if (gpu == null) {
            NativeLibrary.check(TorusNative.torus_host_copy(dst.address() + dstOffset, src.address() + srcOffset, bytes),
                    "copy");
            return;
        }
        if (device.isCpu()) {
            throw new IllegalArgumentException("stream: a copy involving " + gpu + " needs a CUDA stream, got " + this);
        }
        NativeLibrary.check(TorusNative.torus_memcpy_async(device.ordinal(), dst.address() + dstOffset,
                src.address() + srcOffset, bytes, handle), "copy " + src + " -> " + dst);
        // the copy reads or writes device memory from this stream: its free must wait for it
        for (MemoryBuffer b : new MemoryBuffer[] {src, dst}) {
            if (b instanceof DeviceBuffer d && d.device().equals(device) && !d.stream().sameAs(this)) {
                d.recordStream(this);
            }
        }
    }

    /** True when both name the same CUDA stream (default streams are equal by device). */
    boolean sameAs(Stream other) {
        return other == this || (other.device.equals(device) && other.handle == handle);
    }

    void track(DeviceBuffer b) {
        if (owned) {
            synchronized (TRACKING) {
                buffers.add(b);
            }
        }
    }

    void untrack(DeviceBuffer b) {
        if (owned) {
            synchronized (TRACKING) {
                buffers.remove(b);
            }
        }
    }

    private void checkSameDevice(Device other) {
        if (!other.equals(device)) {
            throw new IllegalArgumentException("event: expected an event on " + device + ", got one on " + other);
        }
    }

    void ensureOpen() {
        if (closed) {
            throw new IllegalStateException(this + " is closed");
        }
    }

    /**
     * Destroys an owned stream (a no-op for default streams and when closed; a
     * {@linkplain #borrow borrowed} view only ends its bookkeeping). Throws
     * {@link IllegalStateException}, leaving the stream open, while device buffers
     * allocated on it are open; close them first. Buffers that only recorded this
     * stream keep their ordering: their allocation stream waits for this one's work.
     */
    @Override
    public void close() {
        if (!owned) {
            return;
        }
        synchronized (TRACKING) {
            if (closed) {
                return;
            }
            List<DeviceBuffer> allocatedHere = new ArrayList<>();
            for (DeviceBuffer b : buffers) {
                if (b.stream() == this) {
                    allocatedHere.add(b);
                }
            }
            if (!allocatedHere.isEmpty()) {
                StringBuilder sb = new StringBuilder("cannot close ").append(this).append(": ")
                        .append(allocatedHere.size()).append(" device buffer(s) allocated on it are still open "
                                + "and must be freed on it first:");
                for (DeviceBuffer b : allocatedHere) {
                    sb.append("\n  ").append(b);
                }
                throw new IllegalStateException(sb.toString());
            }
            for (DeviceBuffer b : buffers) {
                b.handOver(this);
            }
            buffers.clear();
            closed = true;
        }
        if (!borrowed) {
            NativeLibrary.check(TorusNative.torus_stream_destroy(device.ordinal(), handle), "close(" + this + ")");
        }
    }

    @Override
    public String toString() {
        return device.isCpu() ? "Stream[cpu]" : "Stream[" + device + (handle == 0 ? ", default]"
                : ", 0x" + Long.toHexString(handle) + (borrowed ? ", borrowed]" : "]"));
    }
}
