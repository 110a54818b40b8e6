package dev.torus;

import java.util.Objects;

import dev.torus.jni.TorusNative;

/**
 * A place where memory lives and kernels run: the host CPU or one CUDA device.
 * Immutable value object; thread-safe.
 *
 * <p>CUDA availability follows the Netty {@code Epoll} pattern:
 * {@link #isCudaAvailable()}, {@link #cudaUnavailableCause()} and
 * {@link #ensureCudaAvailable()}. It is probed once per JVM.
 */
public final class Device {
    /** The kind of device. */
    public enum Type { CPU, CUDA }

    private static final Device CPU = new Device(Type.CPU, -1);

    private final Type type;
    private final int ordinal;

    private Device(Type type, int ordinal) {
        this.type = type;
        this.ordinal = ordinal;
    }

    /** The host. */
    public static Device cpu() {
        return CPU;
    }

    /**
     * CUDA device {@code ordinal}. Naming a device does not require it to exist;
     * using it does (allocation then throws {@link CudaUnavailableException}).
     */
    public static Device cuda(int ordinal) {
        if (ordinal < 0) {
            throw new IllegalArgumentException("ordinal must be >= 0, got " + ordinal);
        }
        return new Device(Type.CUDA, ordinal);
    }

    public Type type() {
        return type;
    }

    /** The CUDA ordinal, or -1 for the CPU. */
    public int ordinal() {
        return ordinal;
    }

    public boolean isCpu() {
        return type == Type.CPU;
    }

    public boolean isCuda() {
        return type == Type.CUDA;
    }

    /** The device code of the native ABI: -1 for the CPU, else the ordinal. */
    public int nativeCode() {
        return ordinal;
    }

    /** True when at least one CUDA device can be used by the kernels. */
    public static boolean isCudaAvailable() {
        return CudaProbe.CAUSE == null;
    }

    /** Why CUDA cannot be used, or null when it can. */
    public static String cudaUnavailableCause() {
        return CudaProbe.CAUSE;
    }

    /** Throws {@link CudaUnavailableException} with the cause when CUDA cannot be used. */
    public static void ensureCudaAvailable() {
        if (CudaProbe.CAUSE != null) {
            throw new CudaUnavailableException("CUDA is not available: " + CudaProbe.CAUSE);
        }
    }

    /** Number of visible CUDA devices; 0 when CUDA is unavailable. */
    public static int cudaDeviceCount() {
        return CudaProbe.COUNT;
    }

    /** A human-readable name: "cpu (avx512, 2 threads)" or the CUDA device's name. */
    public String describe() {
        if (isCpu()) {
            return "cpu (" + NativeLibrary.cpuIsa() + ", " + NativeLibrary.cpuThreads() + " threads)";
        }
        ensureUsable();
        byte[] buf = new byte[256];
        NativeLibrary.check(TorusNative.torus_cuda_device_name(ordinal, buf, buf.length), "deviceName(" + this + ")");
        int len = 0;
        while (len < buf.length && buf[len] != 0) {
            len++;
        }
        return new String(buf, 0, len, java.nio.charset.StandardCharsets.UTF_8);
    }

    /** Throws unless this device can run kernels now (CPU always can). */
    public void ensureUsable() {
        NativeLibrary.ensureLoaded();
        if (isCuda()) {
            ensureCudaAvailable();
            if (ordinal >= CudaProbe.COUNT) {
                throw new IllegalArgumentException("device " + this + " does not exist; CUDA devices: " + CudaProbe.COUNT);
            }
        }
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Device && ((Device) o).type == type && ((Device) o).ordinal == ordinal;
    }

    @Override
    public int hashCode() {
        return Objects.hash(type, ordinal);
    }

    @Override
    public String toString() {
        return isCpu() ? "cpu" : "cuda:" + ordinal;
    }

    private static final class CudaProbe {
        static final String CAUSE;
        static final int COUNT;

        static {
            String cause = null;
            int count = 0;
            try {
                NativeLibrary.ensureLoaded();
                if (TorusNative.torus_cuda_compiled() == 0) {
                    cause = "the Torus native library was built without CUDA (nvcc was not found at build time, or -Dtorus.cuda=OFF)";
                } else {
                    int[] c = new int[1];
                    int st = TorusNative.torus_cuda_device_count(c);
                    if (st != TorusNative.OK) {
                        cause = TorusNative.torus_last_error();
                    } else {
                        count = c[0];
                    }
                }
            } catch (RuntimeException | LinkageError e) {
                cause = "the Torus native library failed to load: " + e;
            }
            CAUSE = cause;
            COUNT = count;
        }
    }
}
