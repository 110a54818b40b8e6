package dev.torus.tensor;

import static dev.torus.internal.NativeAccess.TOKEN;

import dev.torus.internal.NativeAccess;

import java.nio.ByteBuffer;
import java.util.Arrays;

import dev.torus.DType;
import dev.torus.Device;
import dev.torus.NativeLibrary;
import dev.torus.jni.TorusNative;
import dev.torus.memory.Allocator;
import dev.torus.memory.HostBuffer;
import dev.torus.memory.MemoryBuffer;
import dev.torus.memory.Stream;

/**
 * A dense row-major array: shape, dtype and one {@link MemoryBuffer} on a device.
 * No autograd. The tensor owns its buffer: {@link #close()} frees it, after which
 * every method throws {@link IllegalStateException}. Not thread-safe.
 *
 * <p>Factory methods without an {@link Allocator} use
 * {@link Allocator#defaultAllocator()}; results of operations on a tensor are
 * allocated from that tensor's allocator. Work on a CUDA tensor is queued on the
 * device's default stream; the {@code to*Array} methods wait for it.
 */
public final class Tensor implements AutoCloseable {
    private static final long CHUNK = 1L << 30;

    private final long[] shape;
    private final DType dtype;
    private final MemoryBuffer buffer;
    private final long numel;

    private Tensor(MemoryBuffer buffer, DType dtype, long[] shape, long numel) {
        this.buffer = buffer;
        this.dtype = dtype;
        this.shape = shape;
        this.numel = numel;
    }

    // ---- factories ---------------------------------------------------------------

    /** A FLOAT32 CPU tensor holding a copy of {@code data}; the shape's product must equal data.length. */
    public static Tensor fromArray(float[] data, long... shape) {
        return fromArray(Allocator.defaultAllocator(), data, shape);
    }

    /** A FLOAT32 CPU tensor from {@code allocator} holding a copy of {@code data}. */
    public static Tensor fromArray(Allocator allocator, float[] data, long... shape) {
        requireNonNull(data, "data");
        long n = checkShape(shape, data.length);
        Tensor t = empty(allocator, DType.FLOAT32, Device.cpu(), shape);
        t.writeHost((bb, off, len) -> bb.asFloatBuffer().put(data, (int) (off / 4), (int) (len / 4)), n * 4);
        return t;
    }

    /** An INT32 CPU tensor from {@code allocator} holding a copy of {@code data}. */
    public static Tensor fromArray(Allocator allocator, int[] data, long... shape) {
        requireNonNull(data, "data");
        long n = checkShape(shape, data.length);
        Tensor t = empty(allocator, DType.INT32, Device.cpu(), shape);
        t.writeHost((bb, off, len) -> bb.asIntBuffer().put(data, (int) (off / 4), (int) (len / 4)), n * 4);
        return t;
    }

    /**
     * A CPU tensor of a 2-byte dtype (FLOAT16 or BFLOAT16) from raw bit patterns.
     */
    public static Tensor fromBits(Allocator allocator, DType dtype, short[] bits, long... shape) {
        requireNonNull(bits, "bits");
        if (dtype != DType.FLOAT16 && dtype != DType.BFLOAT16) {
            throw new IllegalArgumentException("dtype: expected FLOAT16 or BFLOAT16 for short bits, got " + dtype);
        }
        long n = checkShape(shape, bits.length);
        Tensor t = empty(allocator, dtype, Device.cpu(), shape);
        t.writeHost((bb, off, len) -> bb.asShortBuffer().put(bits, (int) (off / 2), (int) (len / 2)), n * 2);
        return t;
    }

    /**
     * A CPU tensor of any dtype from its raw little-endian bytes; for INT8 and UINT8
     * these are the values. {@code bytes.length} must be numel * dtype size.
     */
    public static Tensor fromBytes(Allocator allocator, DType dtype, byte[] bytes, long... shape) {
        requireNonNull(bytes, "bytes");
        requireNonNull(dtype, "dtype");
        long n = checkShape(shape, -1);
        if (n * dtype.byteSize() != bytes.length) {
            throw new IllegalArgumentException("bytes: expected " + n * dtype.byteSize() + " bytes for shape "
                    + Arrays.toString(shape) + " of " + dtype + ", got " + bytes.length);
        }
        Tensor t = empty(allocator, dtype, Device.cpu(), shape);
        t.writeHost((bb, off, len) -> bb.put(bytes, (int) off, (int) len), bytes.length);
        return t;
    }

    /** A zero-filled tensor from the default allocator. */
    public static Tensor zeros(DType dtype, Device device, long... shape) {
        return zeros(Allocator.defaultAllocator(), dtype, device, shape);
    }

    /** A zero-filled tensor from {@code allocator}. */
    public static Tensor zeros(Allocator allocator, DType dtype, Device device, long... shape) {
        Tensor t = empty(allocator, dtype, device, shape);
        try {
            if (device.isCpu()) {
                NativeLibrary.check(TorusNative.torus_host_zero(t.buffer.address(TOKEN), t.byteSize()), "zeros");
            } else {
                NativeLibrary.check(TorusNative.torus_memset_async(device.ordinal(), t.buffer.address(TOKEN), 0, t.byteSize(),
                        0L), "zeros");
            }
        } catch (RuntimeException e) {
            t.close();
            throw e;
        }
        return t;
    }

    /** Sets every byte to zero, in place (asynchronous on the device's default stream for CUDA tensors). */
    public void zero() {
        ensureOpen();
        if (byteSize() == 0) {
            return;
        }
        if (device().isCpu()) {
            NativeLibrary.check(TorusNative.torus_host_zero(buffer.address(TOKEN), byteSize()), "zero");
        } else {
            NativeLibrary.check(TorusNative.torus_memset_async(device().ordinal(), buffer.address(TOKEN), 0, byteSize(), 0L),
                    "zero");
        }
    }

    /** An uninitialised tensor from {@code allocator}. */
    public static Tensor empty(Allocator allocator, DType dtype, Device device, long... shape) {
        requireNonNull(allocator, "allocator");
        requireNonNull(dtype, "dtype");
        requireNonNull(device, "device");
        long n = checkShape(shape, -1);
        if (n > Long.MAX_VALUE / dtype.byteSize()) {
            throw new IllegalArgumentException("shape: " + Arrays.toString(shape) + " of " + dtype + " overflows a byte size");
        }
        MemoryBuffer b = allocator.allocate(device, n * dtype.byteSize());
        return new Tensor(b, dtype, shape.clone(), n);
    }

    /**
     * A tensor over an existing buffer, without copying (for example a
     * {@linkplain dev.torus.memory.DeviceBuffer#borrow borrowed} view of another library's
     * device memory). The tensor takes ownership of {@code buffer}: closing the tensor
     * closes the buffer (which frees nothing for a borrowed view). The buffer must hold
     * exactly the shape's elements of {@code dtype}.
     */
    public static Tensor wrap(MemoryBuffer buffer, DType dtype, long... shape) {
        requireNonNull(buffer, "buffer");
        requireNonNull(dtype, "dtype");
        buffer.ensureOpen();
        long n = checkShape(shape, -1);
        if (n > Long.MAX_VALUE / dtype.byteSize() || n * dtype.byteSize() != buffer.byteSize()) {
            throw new IllegalArgumentException("shape: " + Arrays.toString(shape) + " of " + dtype + " needs "
                    + (n > Long.MAX_VALUE / dtype.byteSize() ? "more than Long.MAX_VALUE" : String.valueOf(n * dtype.byteSize()))
                    + " bytes, but buffer holds " + buffer.byteSize() + " (" + buffer + ")");
        }
        if (buffer.address(TOKEN) % dtype.byteSize() != 0) {
            throw new IllegalArgumentException("buffer: " + dtype + " elements must be aligned to "
                    + dtype.byteSize() + " bytes, but " + buffer + " starts at an address "
                    + buffer.address(TOKEN) % dtype.byteSize() + " bytes past that (kernels would fault on it)");
        }
        return new Tensor(buffer, dtype, shape.clone(), n);
    }

    /**
     * Copies {@code src}'s elements into this tensor, in place. Both must have the same
     * dtype, element count and device (shapes may differ). Asynchronous on the device's
     * default stream for CUDA tensors.
     */
    public void copyFrom(Tensor src) {
        ensureOpen();
        requireNonNull(src, "src");
        src.ensureOpen();
        if (src.dtype != dtype || src.numel != numel || !src.device().equals(device())) {
            throw new IllegalArgumentException("src must be " + dtype + " with " + numel + " elements on " + device()
                    + ", got " + src);
        }
        if (byteSize() == 0) {
            return;
        }
        if (device().isCpu()) {
            NativeLibrary.check(TorusNative.torus_host_copy(buffer.address(TOKEN), src.buffer.address(TOKEN), byteSize()),
                    "copyFrom");
        } else {
            NativeLibrary.check(TorusNative.torus_memcpy_async(device().ordinal(), buffer.address(TOKEN), src.buffer.address(TOKEN),
                    byteSize(), 0L), "copyFrom");
        }
    }

    /**
     * A tensor of {@code shape} that aliases elements [offset, offset + numel(shape))
     * of this one, without copying. Writes through either are seen by both. The
     * caller owns the view and closes it; closing it frees nothing, and this tensor
     * cannot be closed while a view of it is open.
     */
    public Tensor view(long offset, long... shape) {
        ensureOpen();
        long n = checkShape(shape, -1);
        if (offset < 0 || offset > numel || n > numel - offset) {
            throw new IllegalArgumentException("view: elements [" + offset + ", " + offset + " + " + n
                    + ") must lie inside this tensor's " + numel + " elements");
        }
        long bytes = dtype.byteSize();
        return new Tensor(buffer.slice(offset * bytes, n * bytes), dtype, shape.clone(), n);
    }

    // ---- accessors -----------------------------------------------------------------

    public DType dtype() {
        ensureOpen();
        return dtype;
    }

    /** A copy of the shape. */
    public long[] shape() {
        ensureOpen();
        return shape.clone();
    }

    public int rank() {
        return shape.length;
    }

    /** Size of dimension {@code axis}; negative axes count from the end. */
    public long dim(int axis) {
        return shape[normalizeAxis(axis)];
    }

    /** Number of elements. */
    public long numel() {
        ensureOpen();
        return numel;
    }

    /** Size in bytes. */
    public long byteSize() {
        return numel * dtype.byteSize();
    }

    public Device device() {
        return buffer.device();
    }

    /** The buffer holding the data, owned by this tensor. */
    public MemoryBuffer buffer() {
        ensureOpen();
        return buffer;
    }

    /**
     * The native address of element 0, for Torus's own packages (see {@link NativeAccess});
     * valid while the tensor is open.
     */
    public long dataAddress(NativeAccess token) {
        NativeAccess.check(token, "Tensor.dataAddress");
        return buffer().address(token);
    }

    /** The allocator results of operations on this tensor come from. */
    public Allocator allocator() {
        return buffer.allocator();
    }

    public boolean isClosed() {
        return buffer.isClosed();
    }

    /** Throws {@link IllegalStateException} when this tensor is closed. */
    public void ensureOpen() {
        if (buffer.isClosed()) {
            throw new IllegalStateException("Tensor" + Arrays.toString(shape) + " " + dtype + " on " + buffer.device()
                    + " is closed");
        }
    }

    /** Resolves a possibly negative axis against this tensor's rank. */
    public int normalizeAxis(int axis) {
        int r = shape.length;
        if (axis < -r || axis >= r) {
            throw new IllegalArgumentException("axis: expected a value in [" + -r + ", " + (r - 1) + "] for rank " + r
                    + ", got " + axis);
        }
        return axis < 0 ? axis + r : axis;
    }

    // ---- copies --------------------------------------------------------------------

    /** A copy of this tensor on {@code device}, from the same allocator. Waits for the copy. */
    public Tensor to(Device device) {
        ensureOpen();
        requireNonNull(device, "device");
        Tensor out = empty(allocator(), dtype, device, shape);
        try {
            Device gpu = device.isCuda() ? device : this.device().isCuda() ? this.device() : Device.cpu();
            Stream s = Stream.defaultStream(gpu);
            s.copy(buffer, 0, out.buffer, 0, byteSize());
            s.synchronize();
        } catch (RuntimeException e) {
            out.close();
            throw e;
        }
        return out;
    }

    /** The values as floats. FLOAT16/BFLOAT16 are widened exactly; integer types are converted. */
    public float[] toFloatArray() {
        ensureOpen();
        checkArraySize(numel);
        float[] out = new float[(int) numel];
        switch (dtype) {
            case FLOAT32:
                readHost((bb, off, len) -> bb.asFloatBuffer().get(out, (int) (off / 4), (int) (len / 4)));
                break;
            case FLOAT16:
            case BFLOAT16:
                if (numel == 0) {
                    return out;
                }
                try (Tensor f = Tensor.empty(allocator(), DType.FLOAT32, device(), shape)) {
                    // the cast kernel directly: the quant package builds on this one, not the reverse
                    NativeLibrary.check(TorusNative.torus_cast(device().nativeCode(), 0L, dtype.code(), dataAddress(TOKEN),
                            DType.FLOAT32.code(), f.dataAddress(TOKEN), numel), "toFloatArray(" + dtype + ")");
                    return f.toFloatArray();
                }
            case INT8: {
                byte[] b = toByteArray();
                for (int i = 0; i < b.length; i++) {
                    out[i] = b[i];
                }
                break;
            }
            case UINT8: {
                byte[] b = toByteArray();
                for (int i = 0; i < b.length; i++) {
                    out[i] = b[i] & 0xff;
                }
                break;
            }
            case INT32: {
                int[] v = toIntArray();
                for (int i = 0; i < v.length; i++) {
                    out[i] = v[i];
                }
                break;
            }
            case FLOAT64:
                readHost((bb, off, len) -> {
                    java.nio.DoubleBuffer d = bb.asDoubleBuffer();
                    for (int i = 0; i < len / 8; i++) {
                        out[(int) (off / 8) + i] = (float) d.get(i);
                    }
                });
                break;
            case INT64:
                readHost((bb, off, len) -> {
                    java.nio.LongBuffer d = bb.asLongBuffer();
                    for (int i = 0; i < len / 8; i++) {
                        out[(int) (off / 8) + i] = (float) d.get(i);
                    }
                });
                break;
            default:
                throw new IllegalStateException("unhandled dtype " + dtype);
        }
        return out;
    }

    /** The raw little-endian bytes; for INT8 and UINT8 these are the values. */
    public byte[] toByteArray() {
        ensureOpen();
        checkArraySize(byteSize());
        byte[] out = new byte[(int) byteSize()];
        readHost((bb, off, len) -> bb.get(out, (int) off, (int) len));
        return out;
    }

    /**
     * Copies the raw bytes (native order) into {@code dst} from {@code offset}: one copy, no new array.
     *
     * @throws IllegalArgumentException if they do not fit in {@code dst} at {@code offset}
     */
    public void copyBytesTo(byte[] dst, int offset) {
        ensureOpen();
        requireNonNull(dst, "dst");
        if (offset < 0 || offset > dst.length || dst.length - offset < byteSize()) {
            throw new IllegalArgumentException("copyBytesTo: " + byteSize() + " bytes do not fit in dst (length "
                    + dst.length + ") at offset " + offset);
        }
        readHost((bb, off, len) -> bb.get(dst, (int) (offset + off), (int) len));
    }

    /** The raw 16-bit patterns of a FLOAT16 or BFLOAT16 tensor. */
    public short[] toShortArray() {
        ensureOpen();
        if (dtype.byteSize() != 2) {
            throw new IllegalArgumentException("toShortArray needs a 2-byte dtype (FLOAT16, BFLOAT16), got " + dtype);
        }
        checkArraySize(numel);
        short[] out = new short[(int) numel];
        readHost((bb, off, len) -> bb.asShortBuffer().get(out, (int) (off / 2), (int) (len / 2)));
        return out;
    }

    /** The values of an INT32 tensor. */
    public int[] toIntArray() {
        ensureOpen();
        if (dtype != DType.INT32) {
            throw new IllegalArgumentException("toIntArray needs an INT32 tensor, got " + dtype);
        }
        checkArraySize(numel);
        int[] out = new int[(int) numel];
        readHost((bb, off, len) -> bb.asIntBuffer().get(out, (int) (off / 4), (int) (len / 4)));
        return out;
    }

    @Override
    public void close() {
        buffer.close();
    }

    @Override
    public String toString() {
        return "Tensor" + Arrays.toString(shape) + " " + dtype + " on " + buffer.device() + (isClosed() ? " (closed)" : "");
    }

    // ---- internals -----------------------------------------------------------------

    @FunctionalInterface
    private interface ChunkAccess {
        void apply(ByteBuffer view, long offset, long length);
    }

    private void writeHost(ChunkAccess fill, long bytes) {
        try {
            HostBuffer hb = (HostBuffer) buffer;
            for (long off = 0; off < bytes; off += CHUNK) {
                long len = Math.min(CHUNK, bytes - off);
                fill.apply(hb.view(off, len), off, len);
            }
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    private void readHost(ChunkAccess read) {
        long bytes = byteSize();
        if (buffer instanceof HostBuffer) {
            HostBuffer hb = (HostBuffer) buffer;
            for (long off = 0; off < bytes; off += CHUNK) {
                long len = Math.min(CHUNK, bytes - off);
                read.apply(hb.view(off, len), off, len);
            }
            return;
        }
        try (Tensor host = to(Device.cpu())) {
            host.readHost(read);
        }
    }

    private static void checkArraySize(long n) {
        if (n > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("tensor too large for a Java array: " + n + " elements");
        }
    }

    private static long checkShape(long[] shape, long expected) {
        requireNonNull(shape, "shape");
        long n = 1;
        for (int i = 0; i < shape.length; i++) {
            if (shape[i] < 0) {
                throw new IllegalArgumentException("shape: dimension " + i + " must be >= 0, got " + shape[i]
                        + " in " + Arrays.toString(shape));
            }
            if (shape[i] != 0 && n > Long.MAX_VALUE / shape[i]) {
                throw new IllegalArgumentException("shape: element count of " + Arrays.toString(shape) + " overflows");
            }
            n *= shape[i];
        }
        if (expected >= 0 && n != expected) {
            throw new IllegalArgumentException("shape: " + Arrays.toString(shape) + " has " + n
                    + " elements but data has " + expected);
        }
        return n;
    }

    private static void requireNonNull(Object o, String name) {
        if (o == null) {
            throw new IllegalArgumentException(name + " must not be null");
        }
    }
}
