package dev.torus.memory;

import dev.torus.NativeLibrary;
import dev.torus.internal.NativeAccess;
import dev.torus.jni.TorusNative;

/** Memory-bandwidth ceilings for benchmarks of host kernels. */
public final class HostStreams {
    private HostStreams() {}

    /**
     * The streaming ceiling of a host kernel that reads {@code srcBytes} and writes {@code dstBytes}: reads
     * every 8-byte word of {@code src} once and writes every word of {@code dst} once, with no floating-point
     * work (memcpy is the wrong ceiling for a kernel that reads 4 bytes per byte it writes). {@code dstBytes}
     * 0 only reads. Both buffers must be host memory and large enough; they stay the caller's.
     */
    public static void ceiling(MemoryBuffer dst, long dstBytes, MemoryBuffer src, long srcBytes) {
        if (src == null || (dstBytes > 0 && dst == null)) {
            throw new IllegalArgumentException("src (and dst when dstBytes > 0) must not be null");
        }
        if (!src.device().isCpu() || (dst != null && !dst.device().isCpu())) {
            throw new IllegalArgumentException("ceiling needs host buffers, got " + src.device()
                    + (dst == null ? "" : " and " + dst.device()));
        }
        src.checkRange("src", 0, srcBytes);
        if (dstBytes > 0) {
            dst.checkRange("dst", 0, dstBytes);
        }
        NativeLibrary.check(TorusNative.torus_host_stream(dstBytes > 0 ? dst.address(NativeAccess.TOKEN) : 0, dstBytes,
                src.address(NativeAccess.TOKEN), srcBytes), "host stream ceiling");
    }
}
