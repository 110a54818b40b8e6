package dev.torus;

import dev.torus.jni.TorusNative;

/**
 * Loads the Torus JNI library once and maps native status codes to exceptions
 * (through {@link NativeStatus}).
 * Internal to Torus: public only because several Torus packages use it.
 */
public final class NativeLibrary {
    private static final Throwable LOAD_FAILURE;

    static {
        Throwable failure = null;
        try {
            TorusNative.load();
        } catch (Throwable t) {
            failure = t;
        }
        LOAD_FAILURE = failure;
    }

    private NativeLibrary() {}

    /** Throws a {@link TorusException} explaining why the JNI library did not load. */
    public static void ensureLoaded() {
        if (LOAD_FAILURE != null) {
            throw new TorusException("the Torus native library failed to load: " + LOAD_FAILURE, LOAD_FAILURE);
        }
    }

    /** Throws the exception matching a non-zero status, with the op and the native message. */
    public static void check(int status, String op) {
        if (status == TorusNative.OK) {
            return;
        }
        String detail = TorusNative.torus_last_error();
        throw NativeStatus.of(status).exception(op + " failed: " + detail);
    }

    /** The CPU instruction set the native kernels use ("avx512", "avx2" or "base"). */
    public static String cpuIsa() {
        ensureLoaded();
        return TorusNative.torus_isa_name();
    }

    /** Threads used by the CPU kernels. */
    public static int cpuThreads() {
        ensureLoaded();
        return TorusNative.torus_cpu_threads();
    }

    /** Sets the threads used by the CPU kernels, in [1, 4096]. */
    public static void setCpuThreads(int threads) {
        if (threads < 1 || threads > 4096) {
            throw new IllegalArgumentException("threads must be in [1, 4096], got " + threads);
        }
        ensureLoaded();
        check(TorusNative.torus_set_cpu_threads(threads), "setCpuThreads");
    }

    /** True when the native library was compiled with the CUDA kernels. */
    public static boolean cudaCompiled() {
        ensureLoaded();
        return TorusNative.torus_cuda_compiled() != 0;
    }
}
