package dev.torus.jcuda;

import static dev.torus.internal.NativeAccess.TOKEN;

import dev.torus.DType;
import dev.torus.Device;
import dev.torus.memory.DeviceBuffer;
import dev.torus.memory.MemoryBuffer;
import dev.torus.memory.Stream;
import dev.torus.tensor.Tensor;
import jcuda.Pointer;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUstream;
import jcuda.driver.CUmemorytype;
import jcuda.driver.CUpointer_attribute;
import jcuda.driver.CUresult;
import jcuda.driver.JCudaDriver;
import jcuda.runtime.cudaStream_t;

/**
 * Zero-copy views between JCuda and Torus, in both directions.
 *
 * <p><b>Ownership.</b> A view never owns what it views:
 * <ul>
 *   <li>{@link #wrap(Pointer, long, Device)} makes a {@link DeviceBuffer} over memory that JCuda
 *       (or any CUDA code) allocated. Closing the buffer, or a tensor over it, ends the view and
 *       frees nothing; whoever allocated the memory frees it, after the views are closed and the
 *       work queued on them has finished.</li>
 *   <li>{@link #wrap(cudaStream_t, Device)} makes a Torus {@link Stream} over a JCuda stream. Its
 *       {@code close()} is a no-op; JCuda's owner destroys the stream.</li>
 *   <li>{@link #pointer(Tensor)} hands out a JCuda pointer to a Torus tensor's memory. It is
 *       valid while the tensor is open; Torus still owns and frees the memory.</li>
 * </ul>
 *
 * <p>The address checks ask the CUDA driver (through JCuda's pointer attributes) that a wrapped
 * pointer is device memory on the given device and that the range lies inside one allocation,
 * so a host pointer, a pointer of another device or a range past the end fails here, not in a
 * kernel. They leave JCuda's settings (its exception flags) and the thread's current device as
 * they were. A wrapped stream is not checked against {@code device}; passing one of another
 * device is the caller's error.
 */
public final class JCudaViews {
    private JCudaViews() {}

    /** A view of {@code byteSize} bytes of device memory at {@code devicePointer}, ordered on the device's default stream. */
    public static DeviceBuffer wrap(Pointer devicePointer, long byteSize, Device device) {
        return wrap(devicePointer, byteSize, device, device == null || !device.isCuda() ? null : Stream.defaultStream(device));
    }

    /**
     * A view of {@code byteSize} bytes of device memory at {@code devicePointer}. {@code stream}
     * plays the allocation stream's part: work that other streams queue on the view is
     * {@linkplain DeviceBuffer#recordStream recorded} against it, as for Torus's own buffers.
     *
     * @throws IllegalArgumentException naming the argument for a null or host pointer, a negative
     *         size, a non-CUDA device, a stream of another device, or memory that is not a device
     *         allocation of {@code device} at least {@code byteSize} long
     * @throws dev.torus.CudaUnavailableException when the device or JCuda cannot be used
     */
    public static DeviceBuffer wrap(Pointer devicePointer, long byteSize, Device device, Stream stream) {
        long address = checkDevicePointer(devicePointer, byteSize, device);
        if (stream == null || !stream.device().equals(device)) {
            throw new IllegalArgumentException("stream: expected a stream on " + device + ", got " + stream);
        }
        return DeviceBuffer.borrow(TOKEN, device, address, byteSize, stream,
                "jcuda 0x" + Long.toHexString(address));
    }

    /** A tensor over JCuda device memory, without copying; closing it frees nothing (see {@link #wrap(Pointer, long, Device)}). */
    public static Tensor wrapTensor(Pointer devicePointer, DType dtype, Device device, long... shape) {
        if (dtype == null) {
            throw new IllegalArgumentException("dtype: expected a DType, got null");
        }
        if (shape == null) {
            throw new IllegalArgumentException("shape: expected dimensions, got null");
        }
        long n = 1;
        for (int i = 0; i < shape.length; i++) {
            if (shape[i] < 0) {
                throw new IllegalArgumentException("shape: dimension " + i + " must be >= 0, got " + shape[i]);
            }
            if (shape[i] != 0 && n > Long.MAX_VALUE / shape[i] / dtype.byteSize()) {
                throw new IllegalArgumentException("shape: " + java.util.Arrays.toString(shape) + " of " + dtype
                        + " overflows a byte size");
            }
            n *= shape[i];
        }
        DeviceBuffer view = wrap(devicePointer, n * dtype.byteSize(), device);
        try {
            return Tensor.wrap(view, dtype, shape);
        } catch (RuntimeException e) {
            view.close();
            throw e;
        }
    }

    /** A Torus view of a JCuda runtime stream; {@code close()} on it never destroys the stream. */
    public static Stream wrap(cudaStream_t stream, Device device) {
        if (stream == null) {
            throw new IllegalArgumentException("stream: expected a cudaStream_t, got null");
        }
        checkCudaDevice(device);
        return Stream.borrow(TOKEN, device, JCudaPointers.nativeValue(stream));
    }

    /** A Torus view of a JCuda driver stream; {@code close()} on it never destroys the stream. */
    public static Stream wrap(CUstream stream, Device device) {
        if (stream == null) {
            throw new IllegalArgumentException("stream: expected a CUstream, got null");
        }
        return wrap(new cudaStream_t(stream), device);
    }

    /**
     * A JCuda device pointer to the tensor's first element, valid while the tensor is open. It works
     * with both JCuda's runtime and driver calls. Torus keeps owning the memory: never free it
     * through JCuda.
     */
    public static CUdeviceptr pointer(Tensor tensor) {
        if (tensor == null) {
            throw new IllegalArgumentException("tensor: expected a tensor on a CUDA device, got null");
        }
        return pointer(tensor.buffer());
    }

    /** A JCuda device pointer to a device buffer's memory, valid while the buffer is open. */
    public static CUdeviceptr pointer(MemoryBuffer buffer) {
        if (buffer == null) {
            throw new IllegalArgumentException("buffer: expected a device buffer, got null");
        }
        buffer.ensureOpen();
        if (!buffer.device().isCuda()) {
            throw new IllegalArgumentException("buffer: expected memory on a CUDA device, got " + buffer
                    + "; copy it to a device first");
        }
        return JCudaPointers.devicePointer(buffer.address(TOKEN));
    }

    private static void checkCudaDevice(Device device) {
        if (device == null || !device.isCuda()) {
            throw new IllegalArgumentException("device: expected a CUDA device, got " + device);
        }
    }

    /** Argument checks first (no device needed), then what only the driver can tell. */
    private static long checkDevicePointer(Pointer p, long byteSize, Device device) {
        if (p == null) {
            throw new IllegalArgumentException("devicePointer: expected a JCuda device pointer, got null");
        }
        if (byteSize < 0) {
            throw new IllegalArgumentException("byteSize: expected >= 0, got " + byteSize);
        }
        checkCudaDevice(device);
        if (JCudaPointers.isJavaHostMemory(p)) {
            throw new IllegalArgumentException("devicePointer: expected device memory (a CUdeviceptr or a pointer "
                    + "from cudaMalloc), got a pointer to Java host memory: " + p);
        }
        long address = JCudaPointers.address(p);
        if (address == 0) {
            throw new IllegalArgumentException("devicePointer: expected an allocated device pointer, got a null pointer "
                    + "(was cudaMalloc called on it?)");
        }
        device.ensureUsable();
        JCudaLibraries.ensureDriver("wrap(" + device + ")");
        checkAllocation(address, byteSize, device);
        return address;
    }

    /**
     * Asks the driver about the address (pointer attributes need no current context under
     * unified addressing): device or managed memory, of {@code device}, and
     * [address, address + byteSize) inside one allocation.
     */
    private static void checkAllocation(long address, long byteSize, Device device) {
        CUdeviceptr ptr = JCudaPointers.devicePointer(address);
        String hex = "0x" + Long.toHexString(address);
        try {
            int rc = JCudaDriver.cuInit(0);
            if (rc != CUresult.CUDA_SUCCESS) {
                throw new dev.torus.CudaUnavailableException("wrap(" + device + "): cuInit failed: " + CUresult.stringFor(rc));
            }
            int[] type = new int[1];
            rc = JCudaDriver.cuPointerGetAttribute(Pointer.to(type), CUpointer_attribute.CU_POINTER_ATTRIBUTE_MEMORY_TYPE, ptr);
            if (rc != CUresult.CUDA_SUCCESS) {
                throw new IllegalArgumentException("devicePointer: " + hex + " is not memory CUDA knows ("
                        + CUresult.stringFor(rc) + ")");
            }
            if (type[0] != CUmemorytype.CU_MEMORYTYPE_DEVICE && type[0] != CUmemorytype.CU_MEMORYTYPE_UNIFIED) {
                throw new IllegalArgumentException("devicePointer: expected device memory, got " + CUmemorytype.stringFor(type[0])
                        + " memory at " + hex);
            }
            int[] ordinal = new int[1];
            rc = JCudaDriver.cuPointerGetAttribute(Pointer.to(ordinal), CUpointer_attribute.CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL,
                    ptr);
            if (rc == CUresult.CUDA_SUCCESS && ordinal[0] != device.ordinal()) {
                throw new IllegalArgumentException("devicePointer: " + hex + " is memory of cuda:" + ordinal[0] + ", not of "
                        + device);
            }
            long[] start = new long[1];
            long[] size = new long[1];
            int a = JCudaDriver.cuPointerGetAttribute(Pointer.to(start),
                    CUpointer_attribute.CU_POINTER_ATTRIBUTE_RANGE_START_ADDR, ptr);
            int b = JCudaDriver.cuPointerGetAttribute(Pointer.to(size), CUpointer_attribute.CU_POINTER_ATTRIBUTE_RANGE_SIZE, ptr);
            if (a != CUresult.CUDA_SUCCESS || b != CUresult.CUDA_SUCCESS) {
                throw new IllegalArgumentException("devicePointer: cannot find the allocation holding " + hex + " ("
                        + CUresult.stringFor(a != CUresult.CUDA_SUCCESS ? a : b) + ")");
            }
            long left = start[0] + size[0] - address;
            if (byteSize > left) {
                throw new IllegalArgumentException("byteSize: " + byteSize + " bytes from " + hex
                        + " run past the end of its allocation (" + left + " bytes left)");
            }
        } catch (jcuda.CudaException e) {
            // the user turned JCuda's exceptions on: report the driver's refusal as ours
            throw new IllegalArgumentException("devicePointer: the CUDA driver refused " + hex + ": " + e.getMessage());
        }
    }
}
