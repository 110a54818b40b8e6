package dev.torus.jcuda;

import java.lang.reflect.Field;
import java.lang.reflect.Method;

import jcuda.NativePointerObject;
import jcuda.Pointer;

/**
 * Reads the address inside a JCuda pointer or handle. JCuda keeps it in a protected
 * accessor (a device pointer's value is its native pointer plus its byte offset), so this
 * reads it reflectively, once resolved. Also tells pointers to Java host memory (arrays,
 * NIO buffers, pointer arrays) apart, since those are never device memory.
 */
final class JCudaPointers {
    private static final Method NATIVE_POINTER;
    private static final Method BYTE_OFFSET;
    private static final Field BUFFER;
    private static final Field POINTERS;

    static {
        try {
            NATIVE_POINTER = NativePointerObject.class.getDeclaredMethod("getNativePointer");
            NATIVE_POINTER.setAccessible(true);
            BYTE_OFFSET = Pointer.class.getDeclaredMethod("getByteOffset");
            BYTE_OFFSET.setAccessible(true);
            BUFFER = Pointer.class.getDeclaredField("buffer");
            BUFFER.setAccessible(true);
            POINTERS = Pointer.class.getDeclaredField("pointers");
            POINTERS.setAccessible(true);
        } catch (ReflectiveOperationException | RuntimeException e) {
            throw new ExceptionInInitializerError("this JCuda version (" + JCudaLibraries.version()
                    + ") does not expose the pointer layout Torus reads: " + e);
        }
    }

    private JCudaPointers() {}

    /** The handle's native value (a stream, for example). */
    static long nativeValue(NativePointerObject o) {
        try {
            return (long) NATIVE_POINTER.invoke(o);
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException("cannot read the native value of " + o, e);
        }
    }

    /** The device address a pointer names: native pointer plus byte offset. */
    static long address(Pointer p) {
        try {
            return (long) NATIVE_POINTER.invoke(p) + (long) BYTE_OFFSET.invoke(p);
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException("cannot read the address of " + p, e);
        }
    }

    /** True when the pointer refers to Java host memory (an array, an NIO buffer, or an array of pointers). */
    static boolean isJavaHostMemory(Pointer p) {
        try {
            return BUFFER.get(p) != null || POINTERS.get(p) != null;
        } catch (IllegalAccessException e) {
            throw new IllegalStateException("cannot inspect " + p, e);
        }
    }

    /** A JCuda device pointer to {@code address} (JCuda adds the byte offset to a null native pointer). */
    static jcuda.driver.CUdeviceptr devicePointer(long address) {
        return new jcuda.driver.CUdeviceptr().withByteOffset(address);
    }
}
