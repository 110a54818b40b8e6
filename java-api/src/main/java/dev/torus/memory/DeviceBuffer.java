package dev.torus.memory;

import java.util.ArrayList;
import java.util.List;

import dev.torus.Device;
import dev.torus.NativeLibrary;
import dev.torus.jni.TorusNative;

/**
 * Memory on a CUDA device, allocated stream-ordered ({@code cudaMallocAsync}) on
 * the stream given at allocation and freed on the same stream at close. Created
 * by {@link Allocator#allocateDevice(Device, long, Stream)}; the caller owns it.
 *
 * <p>Record-stream semantics, as in PyTorch's caching allocator: a stream-ordered
 * free only waits for work on the allocation stream, so memory that another stream
 * still reads could be handed to the next allocation too early. Every other stream
 * that uses this buffer is therefore {@linkplain #recordStream recorded} (a
 * {@link Stream#copy} on another stream records itself), and {@link #close()}
 * makes the allocation stream wait for the work queued so far on each recorded
 * stream before the free. Closing a recorded stream first hands that dependency to
 * the allocation stream. A buffer with no other streams costs nothing extra.
 */
public final class DeviceBuffer extends MemoryBuffer {
    private final Device device;
    private final Stream stream;
    /** The buffer that owns the memory (this one unless this is a slice). */
    private final DeviceBuffer owner;
    /** Streams other than {@link #stream} that used the memory; guarded by {@link Stream#TRACKING}. */
    private final List<Stream> users = new ArrayList<>(1);

    DeviceBuffer(Allocator allocator, Device device, long address, long byteSize, Stream stream, String label,
                 Throwable site) {
        super(allocator, address, byteSize, label, site);
        this.device = device;
        this.stream = stream;
        this.owner = this;
        stream.track(this);
    }

    private DeviceBuffer(DeviceBuffer parent, long offset, long bytes) {
        super(parent, offset, bytes);
        this.device = parent.device;
        this.stream = parent.stream;
        this.owner = parent.owner;
    }

    @Override
    DeviceBuffer newSlice(long offset, long bytes) {
        return new DeviceBuffer(this, offset, bytes);
    }

    @Override
    public Device device() {
        return device;
    }

    /** The stream this buffer was allocated on and will be freed on. */
    public Stream stream() {
        return stream;
    }

    /**
     * Declares that work queued on {@code user} uses this memory, so that the free at
     * {@link #close()} waits for it (PyTorch's {@code record_stream}). Call it after
     * queueing such work on a stream other than {@link #stream()}; recording the
     * allocation stream, or a stream twice, is a no-op. On a slice it records on the
     * buffer that owns the memory.
     */
    public void recordStream(Stream user) {
        ensureOpen();
        if (!user.device().equals(device)) {
            throw new IllegalArgumentException("user: expected a stream on " + device + ", got " + user);
        }
        user.ensureOpen();
        if (user.sameAs(stream)) {
            return;
        }
        synchronized (Stream.TRACKING) {
            for (Stream u : owner.users) {
                if (u.sameAs(user)) {
                    return;
                }
            }
            owner.users.add(user);
            user.track(owner);
        }
    }

    /** The streams recorded on this buffer's memory (besides the allocation stream). */
    public List<Stream> recordedStreams() {
        synchronized (Stream.TRACKING) {
            return List.copyOf(owner.users);
        }
    }

    /** Called by {@code user.close()}: the allocation stream takes over the wait for it. */
    void handOver(Stream user) {
        NativeLibrary.check(TorusNative.torus_stream_wait_stream(device.ordinal(), stream.handle(), user.handle()),
                "close(" + user + "): order the free of " + this + " after it");
        users.remove(user);
    }

    @Override
    void free(long address) {
        synchronized (Stream.TRACKING) {
            for (Stream u : users) {
                NativeLibrary.check(TorusNative.torus_stream_wait_stream(device.ordinal(), stream.handle(),
                        u.handle()), "free(" + this + "): wait for " + u);
            }
            if (address != 0) {
                NativeLibrary.check(TorusNative.torus_device_free(device.ordinal(), address, stream.handle()),
                        "free(" + this + ")");
            }
            for (Stream u : users) {
                u.untrack(this);
            }
            users.clear();
            stream.untrack(this);
        }
    }
}
