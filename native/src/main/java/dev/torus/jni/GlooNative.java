package dev.torus.jni;

import org.bytedeco.javacpp.Loader;
import org.bytedeco.javacpp.annotation.Cast;
import org.bytedeco.javacpp.annotation.Platform;

/**
 * JavaCPP binding of the Gloo shim ({@code native/cpp/include/torus/torus_gloo.h}).
 *
 * <p>A separate JNI library from {@link TorusNative}: it links the system's
 * {@code libgloo.so.0} dynamically, so the kernels keep working on a machine
 * without Gloo, and only the Gloo backend reports the missing library. Pointers
 * cross as raw addresses. Internal: {@code dev.torus.comm} validates arguments
 * before calling here.
 */
@Platform(include = "torus/torus_gloo.h", link = {"pthread", "dl", "gloo", "torus_gloo"})
public final class GlooNative {
    static {
        Loader.load();
    }

    private GlooNative() {}

    public static final int OK = 0;
    public static final int ERR_INVALID_ARGUMENT = 1;
    public static final int ERR_OUT_OF_MEMORY = 2;
    public static final int ERR_INTERNAL = 5;
    public static final int ERR_TIMEOUT = 6;
    public static final int ERR_IO = 7;
    public static final int ERR_ABORTED = 8;
    public static final int ERR_MISMATCH = 9;

    public static final int ALGO_RING = 1;
    public static final int ALGO_BCUBE = 2;
    public static final int ALGO_HALVING_DOUBLING = 3;

    /** Forces the library to load; throws {@link UnsatisfiedLinkError} if it (or libgloo) cannot. */
    public static void load() {
        // the static initializer did the work
    }

    public static native @Cast("const char*") String torus_gloo_last_error();

    public static native int torus_gloo_create(int rank, int size, @Cast("const char*") String hostname,
                                               long timeoutMs, @Cast("void**") long[] out);

    public static native int torus_gloo_address_bytes(@Cast("void*") long comm, @Cast("int64_t*") long[] out);

    public static native int torus_gloo_local_addresses(@Cast("void*") long comm, @Cast("char*") byte[] buf, long capacity);

    public static native int torus_gloo_connect(@Cast("void*") long comm, @Cast("const char*") byte[] remote, long bytes);

    public static native int torus_gloo_abort(@Cast("void*") long comm, @Cast("const char*") String reason);

    public static native int torus_gloo_destroy(@Cast("void*") long comm);

    public static native int torus_gloo_allreduce(@Cast("void*") long comm, @Cast("void*") long in, @Cast("void*") long out,
                                                  long count, int dtype, int op, int algorithm, long timeoutMs,
                                                  @Cast("uint32_t") int tag);

    public static native int torus_gloo_reduce(@Cast("void*") long comm, @Cast("void*") long in, @Cast("void*") long out,
                                               long count, int dtype, int op, int root, long timeoutMs,
                                               @Cast("uint32_t") int tag);

    public static native int torus_gloo_broadcast(@Cast("void*") long comm, @Cast("void*") long in, @Cast("void*") long out,
                                                  long count, int dtype, int root, long timeoutMs, @Cast("uint32_t") int tag);

    public static native int torus_gloo_allgather(@Cast("void*") long comm, @Cast("void*") long in, @Cast("void*") long out,
                                                  long count, int dtype, long timeoutMs, @Cast("uint32_t") int tag);

    public static native int torus_gloo_reduce_scatter(@Cast("void*") long comm, @Cast("void*") long in,
                                                       @Cast("void*") long out, long count, int dtype, int op,
                                                       long timeoutMs, @Cast("uint32_t") int tag);

    public static native int torus_gloo_alltoall(@Cast("void*") long comm, @Cast("void*") long in, @Cast("void*") long out,
                                                 long count, int dtype, long timeoutMs, @Cast("uint32_t") int tag);

    public static native int torus_gloo_send(@Cast("void*") long comm, @Cast("void*") long ptr, long bytes, int dst,
                                             @Cast("uint64_t") long slot, long timeoutMs);

    public static native int torus_gloo_recv(@Cast("void*") long comm, @Cast("void*") long ptr, long bytes, int src,
                                             @Cast("uint64_t") long slot, long timeoutMs);

    public static native int torus_gloo_barrier(@Cast("void*") long comm, long timeoutMs, @Cast("uint32_t") int tag);

    public static native int torus_gloo_bytes_sent(@Cast("void*") long comm, @Cast("int64_t*") long[] out,
            @Cast("int64_t*") long[] sockets);

    public static native int torus_gloo_reduce_local(@Cast("void*") long c, @Cast("const void*") long a,
                                                     @Cast("const void*") long b, long count, int dtype, int op);

    // ---------------------------------------------------------------- shared-memory transport

    public static native int torus_gloo_shm_open(@Cast("void*") long comm, @Cast("const char*") String name, int create,
                                                 int localRank, @Cast("const int32_t*") int[] globalRanks, int localSize,
                                                 long slotBytes);

    public static native int torus_gloo_shm_ready(@Cast("void*") long comm);

    public static native int torus_gloo_shm_unlink(@Cast("void*") long comm);

    public static native int torus_gloo_shm_close(@Cast("void*") long comm);

    public static native int torus_gloo_shm_set_layout(@Cast("void*") long comm, int hierarchical, int leader,
                                                       int hostIndex, @Cast("void*") long cross);

    public static native int torus_gloo_shm_unlink_stale(@Cast("const char*") String prefix, long belowGeneration);

    public static native int torus_gloo_shm_allreduce(@Cast("void*") long comm, @Cast("void*") long in,
                                                      @Cast("void*") long out, long count, int dtype, int op,
                                                      int algorithm, long timeoutMs, @Cast("uint32_t") int tag);

    public static native int torus_gloo_shm_broadcast(@Cast("void*") long comm, @Cast("void*") long in,
                                                      @Cast("void*") long out, long count, int dtype, int rootHost,
                                                      int rootLocal, long timeoutMs, @Cast("uint32_t") int tag);

    public static native int torus_gloo_shm_allgather(@Cast("void*") long comm, @Cast("void*") long in,
                                                      @Cast("void*") long out, long count, int dtype, long timeoutMs,
                                                      @Cast("uint32_t") int tag);

    public static native int torus_gloo_shm_barrier(@Cast("void*") long comm, long timeoutMs, @Cast("uint32_t") int tag);
}
