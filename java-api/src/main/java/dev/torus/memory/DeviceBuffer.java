package dev.torus.memory;

import java.util.ArrayList;
import java.util.List;

import dev.torus.Device;
import dev.torus.NativeLibrary;
import dev.torus.internal.NativeAccess;
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
    /** True for a view of memory that another library allocated and frees (see {@link #borrow}). */
    private final boolean borrowed;

    DeviceBuffer(Allocator allocator, Device device, long address, long byteSize, Stream stream, String label,
                 Throwable site) {
        this(allocator, device, address, byteSize, stream, label, site, false);
    }

    private DeviceBuffer(Allocator allocator, Device device, long address, long byteSize, Stream stream, String label,
                         Throwable site, boolean borrowed) {
        super(allocator, address, byteSize, label, site);
        this.device = device;
        this.stream = stream;
        this.owner = this;
        this.borrowed = borrowed;
        stream.track(this);
    }

    /**
     * A view of device memory that another library allocated (JCuda, for example), for
     * Torus's interop modules (see {@link NativeAccess}). The view never frees the memory:
     * {@link #close()} only ends the view, and the library that allocated the memory still
     * owns it and must keep it alive until the view and every tensor over it are closed and
     * the work queued on them has finished. The view is not counted by any allocator; its
     * {@link #allocator()} is the default allocator, which results computed from it use.
     */
    public static DeviceBuffer borrow(NativeAccess token, Device device, long address, long byteSize, Stream stream,
                                      String label) {
        NativeAccess.check(token, "DeviceBuffer.borrow");
        if (device == null || !device.isCuda()) {
            throw new IllegalArgumentException("device: expected a CUDA device, got " + device);
        }
        if (byteSize < 0) {
            throw new IllegalArgumentException("byteSize: expected >= 0, got " + byteSize);
        }
        if (address == 0 && byteSize > 0) {
            throw new IllegalArgumentException("address: expected a non-null device address for " + byteSize + " bytes");
        }
        if (stream == null || !stream.device().equals(device)) {
            throw new IllegalArgumentException("stream: expected a stream on " + device + ", got " + stream);
        }
        stream.ensureOpen();
        return new DeviceBuffer(Allocator.defaultAllocator(), device, address, byteSize, stream,
                label == null ? "borrowed" : label, null, true);
    }

    /** True when this buffer views memory that another library owns and frees. */
    public boolean isBorrowed() {
        return owner.borrowed;
    }

    private DeviceBuffer(DeviceBuffer parent, long offset, long bytes) {
        super(parent, offset, bytes);
        this.device = parent.device;
        this.stream = parent.stream;
        this.owner = parent.owner;
        this.borrowed = parent.borrowed;
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
        if (!borrowed) NativeLibrary.check(TorusNative.torus_stream_wait_stream(device.ordinal(), stream.handle(), user.handle()),
                "close(" + user + "): order the free of " + this + " after it");
        users.remove(user);
    }

    @Override
    void free(long address) {
        synchronized (Stream.TRACKING) {
            // a borrowed view frees nothing, so it has nothing to order after the users' work
            for (Stream u : borrowed ? List.<Stream>of() : users) {
                NativeLibrary.check(TorusNative.torus_stream_wait_stream(device.ordinal(), stream.handle(),
                        u.handle()), "free(" + this + "): wait for " + u);
            }
            if (address != 0 && !borrowed) {
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
