package dev.torus.memory;

import dev.torus.Device;
import dev.torus.NativeLibrary;
import dev.torus.jni.TorusNative;

/**
 * Memory on a CUDA device, allocated stream-ordered ({@code cudaMallocAsync}) on
 * the stream given at allocation and freed on the same stream at close. Created
 * by {@link Allocator#allocateDevice(Device, long, Stream)}; the caller owns it.
 */
public final class DeviceBuffer extends MemoryBuffer {
    private final Device device;
    private final Stream stream;

    DeviceBuffer(Allocator allocator, Device device, long address, long byteSize, Stream stream, String label,
                 Throwable site) {
        super(allocator, address, byteSize, label, site);
        this.device = device;
        this.stream = stream;
    }

    private DeviceBuffer(DeviceBuffer parent, long offset, long bytes) {
        super(parent, offset, bytes);
        this.device = parent.device;
        this.stream = parent.stream;
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

    @Override
    void free(long address) {
        if (address != 0) {
            NativeLibrary.check(TorusNative.torus_device_free(device.ordinal(), address, stream.handle()),
                    "free(" + this + ")");
        }
    }
}
