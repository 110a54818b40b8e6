package dev.torus.comm;

import dev.torus.DType;
import dev.torus.TorusException;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.util.Set;
import org.bytedeco.cuda.cudart.CUevent_st;
import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.cuda.global.cudart;
import org.bytedeco.cuda.global.nccl;
import org.bytedeco.cuda.nccl.ncclComm;
import org.bytedeco.cuda.nccl.ncclConfig_t;
import org.bytedeco.cuda.nccl.ncclUniqueId;
import org.bytedeco.javacpp.Loader;
import org.bytedeco.javacpp.Pointer;

/**
 * The real {@link NcclDriver}: NCCL and the CUDA runtime through the bytedeco CUDA
 * presets. Its class is loaded only after {@code Device.isCudaAvailable()} says a GPU
 * is present, so the presets' native libraries are never touched on a CPU-only
 * machine. Stateless; one shared instance from {@link #get()}.
 */
final class NcclLibrary implements NcclDriver {
    /** NCCL's {@code NCCL_CONFIG_UNDEF_INT}; the presets do not map the macro. */
    static final int CONFIG_UNDEF_INT = Integer.MIN_VALUE;
    private static final Set<String> CONFIG_HEADER = Set.of("size", "magic", "version");

    private static NcclLibrary instance;

    private NcclLibrary() {}

    /**
     * Loads the presets once, turning a missing NCCL or cudart into an explanation of
     * what to install (again on every call while they stay missing).
     */
    static synchronized NcclLibrary get() {
        if (instance == null) {
            instance = load();
        }
        return instance;
    }

    private static NcclLibrary load() {
        try {
            Loader.load(cudart.class);
            Loader.load(nccl.class);
        } catch (UnsatisfiedLinkError | NoClassDefFoundError e) {
            String msg = String.valueOf(e.getMessage());
            String missing = msg.contains("nccl") ? "libnccl.so.2" : msg.contains("cudart") ? "libcudart.so.13" : msg;
            throw new TorusException("the nccl backend cannot load " + missing + " (" + msg + "). Provide NCCL 2.2x and "
                    + "the CUDA 13 runtime on the library path: e.g. 'pip install nvidia-nccl-cu13 nvidia-cuda-runtime' and "
                    + "add their lib/ folders to LD_LIBRARY_PATH, or install the libnccl2 and cuda-cudart-13 packages.", e);
        }
        if (nccl.ncclSuccess != SUCCESS || nccl.ncclInProgress != IN_PROGRESS
                || cudart.cudaErrorNotReady != CUDA_ERROR_NOT_READY) {
            throw new TorusException("internal: the NCCL/CUDA status codes of the presets differ from NcclDriver's");
        }
        return new NcclLibrary();
    }

    /**
     * A non-blocking config with {@code NCCL_CONFIG_INITIALIZER} semantics: size, magic
     * and version set, every other field {@code NCCL_CONFIG_UNDEF_INT} or
     * {@code NCCL_CONFIG_UNDEF_PTR}, then {@code blocking = 0}. The presets cannot map
     * the initializer macro, so the fields are found by reflection: a field that a newer
     * preset adds becomes UNDEF without a code change (NCCL itself treats fields beyond
     * {@code size} as UNDEF).
     */
    static ncclConfig_t nonBlockingConfig() {
        ncclConfig_t cfg = new ncclConfig_t();
        applyConfigInitializer(cfg, cfg.sizeof(), 0xcafebeef, nccl.NCCL_VERSION_CODE);
        cfg.blocking(0);
        return cfg;
    }

    /**
     * Sets {@code size}, {@code magic} and {@code version}, and every other one-argument
     * {@code int} or pointer setter of {@code cfg}'s class to UNDEF. A setter of any other
     * type fails loudly rather than leaving a zero that NCCL would take as a choice.
     */
    static void applyConfigInitializer(Object cfg, long size, int magic, int version) {
        try {
            Class<?> c = cfg.getClass();
            c.getMethod("size", long.class).invoke(cfg, size);
            c.getMethod("magic", int.class).invoke(cfg, magic);
            c.getMethod("version", int.class).invoke(cfg, version);
            for (Method m : c.getDeclaredMethods()) {
                if (!Modifier.isPublic(m.getModifiers()) || Modifier.isStatic(m.getModifiers())
                        || m.getParameterCount() != 1 || m.getReturnType() != c || CONFIG_HEADER.contains(m.getName())
                        || m.getName().equals("position") || m.getName().equals("getPointer")) {
                    continue;
                }
                Class<?> p = m.getParameterTypes()[0];
                if (p == int.class) {
                    m.invoke(cfg, CONFIG_UNDEF_INT);
                } else if (Pointer.class.isAssignableFrom(p)) {
                    m.invoke(cfg, (Object) null);
                } else {
                    throw new IllegalStateException("internal: ncclConfig_t field '" + m.getName() + "' has type " + p
                            + ", for which NCCL_CONFIG_INITIALIZER's UNDEF value is not known here");
                }
            }
        } catch (NoSuchMethodException | IllegalAccessException e) {
            throw new IllegalStateException("internal: cannot initialize ncclConfig_t: " + e, e);
        } catch (InvocationTargetException e) {
            throw new IllegalStateException("internal: cannot initialize ncclConfig_t: " + e.getCause(), e.getCause());
        }
    }

    private static final class Raw extends Pointer {
        Raw(long address) {
            this.address = address;
        }
    }

    private static Pointer ptr(long address) {
        return new Raw(address);
    }

    private static ncclComm comm(long handle) {
        return new ncclComm(ptr(handle));
    }

    private static CUstream_st stream(long handle) {
        return handle == 0 ? null : new CUstream_st(ptr(handle));
    }

    private static CUevent_st event(long handle) {
        return new CUevent_st(ptr(handle));
    }

    static int ncclType(DType dt) {
        return switch (dt) {
            case FLOAT32 -> nccl.ncclFloat32;
            case FLOAT16 -> nccl.ncclFloat16;
            case BFLOAT16 -> nccl.ncclBfloat16;
            case FLOAT64 -> nccl.ncclFloat64;
            case INT8 -> nccl.ncclInt8;
            case UINT8 -> nccl.ncclUint8;
            case INT32 -> nccl.ncclInt32;
            case INT64 -> nccl.ncclInt64;
        };
    }

    static int ncclOp(ReduceOp op) {
        return switch (op) {
            case SUM -> nccl.ncclSum;
            case PROD -> nccl.ncclProd;
            case MIN -> nccl.ncclMin;
            case MAX -> nccl.ncclMax;
            case AVG -> nccl.ncclAvg;
        };
    }

    @Override
    public int getUniqueId(byte[] id) {
        ncclUniqueId uid = new ncclUniqueId();
        int st = nccl.ncclGetUniqueId(uid);
        for (int i = 0; i < UNIQUE_ID_BYTES; i++) {
            id[i] = uid.internal(i);
        }
        return st;
    }

    @Override
    public int commInitRank(long[] out, int nranks, byte[] id, int rank) {
        ncclUniqueId uid = new ncclUniqueId();
        for (int i = 0; i < UNIQUE_ID_BYTES; i++) {
            uid.internal(i, id[i]);
        }
        ncclComm c = new ncclComm();
        int st = nccl.ncclCommInitRankConfig(c, nranks, uid, rank, nonBlockingConfig());
        out[0] = c.address();
        return st;
    }

    @Override
    public int commSplit(long parent, int color, int key, long[] out) {
        ncclComm c = new ncclComm();
        int st = nccl.ncclCommSplit(comm(parent), color < 0 ? nccl.NCCL_SPLIT_NOCOLOR : color, key, c,
                nonBlockingConfig());
        out[0] = c.address();
        return st;
    }

    @Override
    public int commGetAsyncError(long c, int[] state) {
        return nccl.ncclCommGetAsyncError(comm(c), state);
    }

    @Override
    public int commCount(long c, int[] count) {
        return nccl.ncclCommCount(comm(c), count);
    }

    @Override
    public int commUserRank(long c, int[] rank) {
        return nccl.ncclCommUserRank(comm(c), rank);
    }

    @Override
    public int commFinalize(long c) {
        return nccl.ncclCommFinalize(comm(c));
    }

    @Override
    public int commDestroy(long c) {
        return nccl.ncclCommDestroy(comm(c));
    }

    @Override
    public int commAbort(long c) {
        return nccl.ncclCommAbort(comm(c));
    }

    @Override
    public String errorString(int status) {
        return nccl.ncclGetErrorString(status).getString();
    }

    @Override
    public int groupStart() {
        return nccl.ncclGroupStart();
    }

    @Override
    public int groupEnd() {
        return nccl.ncclGroupEnd();
    }

    @Override
    public int allReduce(long send, long recv, long count, DType dt, ReduceOp op, long c, long s) {
        return nccl.ncclAllReduce(ptr(send), ptr(recv), count, ncclType(dt), ncclOp(op), comm(c), stream(s));
    }

    @Override
    public int broadcast(long send, long recv, long count, DType dt, int root, long c, long s) {
        return nccl.ncclBroadcast(ptr(send), ptr(recv), count, ncclType(dt), root, comm(c), stream(s));
    }

    @Override
    public int reduce(long send, long recv, long count, DType dt, ReduceOp op, int root, long c, long s) {
        return nccl.ncclReduce(ptr(send), ptr(recv), count, ncclType(dt), ncclOp(op), root, comm(c), stream(s));
    }

    @Override
    public int allGather(long send, long recv, long countPerRank, DType dt, long c, long s) {
        return nccl.ncclAllGather(ptr(send), ptr(recv), countPerRank, ncclType(dt), comm(c), stream(s));
    }

    @Override
    public int reduceScatter(long send, long recv, long countPerRank, DType dt, ReduceOp op, long c, long s) {
        return nccl.ncclReduceScatter(ptr(send), ptr(recv), countPerRank, ncclType(dt), ncclOp(op), comm(c), stream(s));
    }

    @Override
    public int send(long buf, long count, DType dt, int peer, long c, long s) {
        return nccl.ncclSend(ptr(buf), count, ncclType(dt), peer, comm(c), stream(s));
    }

    @Override
    public int recv(long buf, long count, DType dt, int peer, long c, long s) {
        return nccl.ncclRecv(ptr(buf), count, ncclType(dt), peer, comm(c), stream(s));
    }

    @Override
    public int getDevice(int[] ordinal) {
        return cudart.cudaGetDevice(ordinal);
    }

    @Override
    public int setDevice(int ordinal) {
        return cudart.cudaSetDevice(ordinal);
    }

    @Override
    public int streamCreate(long[] out) {
        CUstream_st s = new CUstream_st();
        int st = cudart.cudaStreamCreateWithFlags(s, cudart.cudaStreamNonBlocking);
        out[0] = s.address();
        return st;
    }

    @Override
    public int streamDestroy(long s) {
        return cudart.cudaStreamDestroy(stream(s));
    }

    @Override
    public int eventCreate(long[] out) {
        CUevent_st e = new CUevent_st();
        int st = cudart.cudaEventCreateWithFlags(e, cudart.cudaEventDisableTiming);
        out[0] = e.address();
        return st;
    }

    @Override
    public int eventDestroy(long e) {
        return cudart.cudaEventDestroy(event(e));
    }

    @Override
    public int eventRecord(long e, long s) {
        return cudart.cudaEventRecord(event(e), stream(s));
    }

    @Override
    public int eventQuery(long e) {
        return cudart.cudaEventQuery(event(e));
    }

    @Override
    public int streamWaitEvent(long s, long e) {
        return cudart.cudaStreamWaitEvent(stream(s), event(e), 0);
    }

    @Override
    public String cudaErrorString(int status) {
        return cudart.cudaGetErrorString(status).getString();
    }
}
