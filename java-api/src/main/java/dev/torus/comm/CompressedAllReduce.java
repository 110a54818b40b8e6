package dev.torus.comm;

import static dev.torus.internal.NativeAccess.TOKEN;

import dev.torus.DType;
import dev.torus.Device;
import dev.torus.NativeLibrary;
import dev.torus.tensor.Tensor;
import dev.torus.jni.TorusNative;
import dev.torus.memory.Allocator;
import dev.torus.quant.QuantSpec;
import dev.torus.quant.QuantizedTensor;
import dev.torus.quant.Quantizer;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Gradient all-reduce with compressed payloads, built as reduce-scatter plus
 * all-gather so that only encoded bytes cross the wire:
 *
 * <ol>
 *   <li>each rank encodes its (error-corrected) gradient, padded to a multiple of
 *       {@code size() x block}, and all-to-alls the encoded chunks: chunk j goes to rank j;</li>
 *   <li>rank j decodes the chunks it received and sums them in fp32, in rank order;</li>
 *   <li>rank j encodes its summed chunk (with a second error-feedback residual for int8)
 *       and all-gathers it; every rank decodes the same bytes, so every rank ends with
 *       bit-identical results.</li>
 * </ol>
 *
 * Residuals and scratch buffers are kept per tensor key and owned by this object;
 * {@link #close()} frees them. The communicator is borrowed, not owned. Each call is
 * one collective on the communicator's lane (one seq). CPU tensors only for now.
 */
public final class CompressedAllReduce implements AutoCloseable {
    private final Communicator comm;
    private final BaseCommunicator base;
    private final Compression compression;
    private final Allocator allocator;
    private final Map<String, State> states = new ConcurrentHashMap<>();
    private final AtomicLong wireBytes = new AtomicLong();
    private final AtomicLong uncompressedBytes = new AtomicLong();
    private boolean closed;

    public CompressedAllReduce(Communicator comm, Compression compression, Allocator allocator) {
        if (!(comm instanceof BaseCommunicator b)) {
            throw new IllegalArgumentException("comm must be a communicator made by Communicator.builder() or fromEnv()");
        }
        if (compression == null) {
            throw new IllegalArgumentException("compression must not be null");
        }
        if (allocator == null) {
            throw new IllegalArgumentException("allocator must not be null");
        }
        this.comm = comm;
        this.base = b;
        this.compression = compression;
        this.allocator = allocator.newChildAllocator("compressed-allreduce-" + compression, Long.MAX_VALUE);
    }

    /**
     * All-reduces {@code grad} (FLOAT32, CPU) in place with SUM or AVG. {@code key} names
     * the tensor across steps: its error-feedback residual lives under that key, so reuse
     * the same key for the same parameter and a different key for each parameter.
     */
    public Work allReduce(String key, Tensor grad, ReduceOp op) {
        return allReduce(key, grad, op, OpOptions.defaults());
    }

    public Work allReduce(String key, Tensor grad, ReduceOp op, OpOptions options) {
        synchronized (this) {
            if (closed) {
                throw new IllegalStateException("CompressedAllReduce is closed");
            }
        }
        if (key == null || key.isEmpty()) {
            throw new IllegalArgumentException("key must be a non-empty name for this tensor");
        }
        base.requireTensor("grad", grad);
        if (grad.dtype() != DType.FLOAT32) {
            throw new IllegalArgumentException("grad must be FLOAT32, got " + grad.dtype());
        }
        if (!grad.device().isCpu()) {
            throw new IllegalArgumentException("grad must be a CPU tensor: compressed all-reduce of CUDA tensors is not "
                    + "implemented yet (see docs/COLLECTIVES.md)");
        }
        if (op != ReduceOp.SUM && op != ReduceOp.AVG) {
            throw new IllegalArgumentException("op must be SUM or AVG for compressed all-reduce, got " + op);
        }
        long n = grad.numel();
        State st = states.computeIfAbsent(key, k -> new State(n));
        if (st.n != n) {
            throw new IllegalArgumentException("grad for key '" + key + "' has " + n + " elements, but the key was first used"
                    + " with " + st.n + "; use a different key per tensor");
        }
        int world = comm.size();
        long wire = world <= 1 ? 0 : 2L * (world - 1) * compression.encodedBytes(st.chunk);
        wireBytes.addAndGet(wire);
        uncompressedBytes.addAndGet(world <= 1 ? 0 : 2L * (world - 1) * grad.byteSize() / world);
        var fp = new Fingerprint(OpType.COMPRESSED_ALL_REDUCE, op.ordinal(), DType.FLOAT32, n, -1);
        return base.submitCollective(fp, List.of(grad), options, wire, (timeoutMs, tag) -> {
            synchronized (st) {
                st.run(grad, op == ReduceOp.AVG, timeoutMs, tag);
            }
        });
    }

    /** Encoded bytes this rank has sent so far. */
    public long bytesSent() {
        return wireBytes.get();
    }

    /** Bytes a ring all-reduce of the same fp32 tensors would have sent from this rank. */
    public long uncompressedBytes() {
        return uncompressedBytes.get();
    }

    public Compression compression() {
        return compression;
    }

    /** Forgets every residual (for example after a model reload). */
    public void resetResiduals() {
        for (State st : states.values()) {
            synchronized (st) {
                st.zeroResiduals();
            }
        }
    }

    /** Frees residuals and scratch. Operations still pending are awaited first (bounded by their timeouts). */
    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
        }
        for (State st : states.values()) {
            synchronized (st) {
                st.close();
            }
        }
        states.clear();
        allocator.close();
    }

    // ------------------------------------------------------------------ per-key state

    private final class State {
        final long n;
        final long padded;
        final long chunk;
        final Tensor input;      // [padded] fp32: grad + residual, zero padding
        final Tensor decoded;    // [padded] fp32
        final Tensor shard;      // [chunk] fp32: this rank's sum
        final Tensor shardBack;  // [chunk] fp32: decoded own chunk (error feedback)
        final Tensor residual;   // [n] fp32 (int8 + feedback only)
        final Tensor residual2;  // [chunk] fp32 (int8 + feedback only)
        final QuantizedTensor q, recv, q2, gathered; // int8 only
        final Tensor h, hRecv, h2, hGathered;         // fp16/bf16 only

        State(long n) {
            this.n = n;
            int world = comm.size();
            long align = (long) world * Math.max(64, compression.blockSize());
            this.padded = Math.max(align, (n + align - 1) / align * align);
            this.chunk = padded / world;
            input = zeros(DType.FLOAT32, padded);
            decoded = zeros(DType.FLOAT32, padded);
            shard = zeros(DType.FLOAT32, chunk);
            shardBack = zeros(DType.FLOAT32, chunk);
            boolean int8 = compression.kind() == Compression.Kind.INT8_BLOCKWISE;
            boolean ef = int8 && compression.errorFeedback();
            residual = ef ? zeros(DType.FLOAT32, n) : null;
            residual2 = ef ? zeros(DType.FLOAT32, chunk) : null;
            if (int8) {
                QuantSpec spec = QuantSpec.int8Symmetric().blockwise(compression.blockSize());
                q = quantized(spec, padded);
                recv = quantized(spec, padded);
                q2 = quantized(spec, chunk);
                gathered = quantized(spec, padded);
                h = hRecv = h2 = hGathered = null;
            } else {
                DType half = switch (compression.kind()) {
                    case FP16 -> DType.FLOAT16;
                    case BF16 -> DType.BFLOAT16;
                    default -> DType.FLOAT32;
                };
                h = zeros(half, padded);
                hRecv = zeros(half, padded);
                h2 = zeros(half, chunk);
                hGathered = zeros(half, padded);
                q = recv = q2 = gathered = null;
            }
        }

        Tensor zeros(DType dt, long count) {
            return Tensor.zeros(allocator, dt, Device.cpu(), count);
        }

        QuantizedTensor quantized(QuantSpec spec, long count) {
            return QuantizedTensor.of(zeros(DType.INT8, count), zeros(DType.FLOAT32, count / spec.blockSize()), null, spec);
        }

        /** One compressed all-reduce; {@code tag} is the op's wire tag, its four transfers use sub-tags. */
        void run(Tensor grad, boolean average, long timeoutMs, long tag) {
            int world = comm.size();
            FloatLoops.copy(input.dataAddress(TOKEN), grad.dataAddress(TOKEN), n);
            if (residual != null) {
                FloatLoops.add(input.dataAddress(TOKEN), input.dataAddress(TOKEN), residual.dataAddress(TOKEN), n);
            }
            long bc = compression.blockSize();
            if (q != null) {
                Quantizer.quantizeInto(input, q);
                if (residual != null) {
                    Quantizer.dequantizeInto(q, decoded);
                    FloatLoops.sub(residual.dataAddress(TOKEN), input.dataAddress(TOKEN), decoded.dataAddress(TOKEN), n);
                }
                base.rawAllToAll(q.values().dataAddress(TOKEN), recv.values().dataAddress(TOKEN), chunk, DType.INT8, timeoutMs,
                        Fingerprint.subTag(tag, 0));
                base.rawAllToAll(q.scales().dataAddress(TOKEN), recv.scales().dataAddress(TOKEN), chunk / bc, DType.FLOAT32,
                        timeoutMs, Fingerprint.subTag(tag, 1));
                Quantizer.dequantizeInto(recv, decoded);
            } else {
                cast(input, h);
                base.rawAllToAll(h.dataAddress(TOKEN), hRecv.dataAddress(TOKEN), chunk, h.dtype(), timeoutMs,
                        Fingerprint.subTag(tag, 0));
                cast(hRecv, decoded);
            }
            FloatLoops.sumChunks(shard.dataAddress(TOKEN), decoded.dataAddress(TOKEN), world, chunk, average ? world : 1);
            if (q2 != null) {
                if (residual2 != null) {
                    FloatLoops.add(shard.dataAddress(TOKEN), shard.dataAddress(TOKEN), residual2.dataAddress(TOKEN), chunk);
                }
                Quantizer.quantizeInto(shard, q2);
                if (residual2 != null) {
                    Quantizer.dequantizeInto(q2, shardBack);
                    FloatLoops.sub(residual2.dataAddress(TOKEN), shard.dataAddress(TOKEN), shardBack.dataAddress(TOKEN), chunk);
                }
                base.rawAllGather(q2.values().dataAddress(TOKEN), gathered.values().dataAddress(TOKEN), chunk, DType.INT8,
                        timeoutMs, Fingerprint.subTag(tag, 2));
                base.rawAllGather(q2.scales().dataAddress(TOKEN), gathered.scales().dataAddress(TOKEN), chunk / bc, DType.FLOAT32,
                        timeoutMs, Fingerprint.subTag(tag, 3));
                Quantizer.dequantizeInto(gathered, decoded);
            } else {
                cast(shard, h2);
                base.rawAllGather(h2.dataAddress(TOKEN), hGathered.dataAddress(TOKEN), chunk, h2.dtype(), timeoutMs,
                        Fingerprint.subTag(tag, 2));
                cast(hGathered, decoded);
            }
            FloatLoops.copy(grad.dataAddress(TOKEN), decoded.dataAddress(TOKEN), n);
        }

        /** Round-to-nearest-even cast, or a plain copy for the fp32 "encoding". */
        void cast(Tensor from, Tensor to) {
            if (from.dtype() == to.dtype()) {
                FloatLoops.copy(to.dataAddress(TOKEN), from.dataAddress(TOKEN), to.numel());
            } else {
                Quantizer.castInto(from, to);
            }
        }

        void zeroResiduals() {
            if (residual != null) {
                NativeLibrary.check(TorusNative.torus_host_zero(residual.dataAddress(TOKEN), residual.byteSize()), "zero");
                NativeLibrary.check(TorusNative.torus_host_zero(residual2.dataAddress(TOKEN), residual2.byteSize()), "zero");
            }
        }

        void close() {
            for (AutoCloseable c : new AutoCloseable[] {input, decoded, shard, shardBack, residual, residual2, q, recv, q2,
                    gathered, h, hRecv, h2, hGathered}) {
                if (c != null) {
                    try {
                        c.close();
                    } catch (Exception e) {
                        throw new IllegalStateException("closing compressed all-reduce state: " + e.getMessage(), e);
                    }
                }
            }
        }
    }

    /** fp32 loops over native host memory: native kernels on the kernel thread pool. */
    static final class FloatLoops {
        private FloatLoops() {}

        static void copy(long dst, long src, long count) {
            if (count > 0) {
                NativeLibrary.check(TorusNative.torus_host_copy(dst, src, count * 4), "copy");
            }
        }

        /** dst = a + b, element-wise (native, on the kernel thread pool; bitwise the scalar loop). */
        static void add(long dst, long a, long b, long count) {
            if (count > 0) {
                NativeLibrary.check(TorusNative.torus_f32_add(dst, a, b, count), "f32_add");
            }
        }

        /** dst = a − b, element-wise (native). */
        static void sub(long dst, long a, long b, long count) {
            if (count > 0) {
                NativeLibrary.check(TorusNative.torus_f32_sub(dst, a, b, count), "f32_sub");
            }
        }

        /** dst[i] = (sum over r in rank order of src[r * chunk + i]) / divisor (native; no division for 1). */
        static void sumChunks(long dst, long src, int ranks, long chunk, int divisor) {
            if (chunk > 0) {
                NativeLibrary.check(TorusNative.torus_f32_sum_chunks(dst, src, ranks, chunk, divisor), "f32_sum_chunks");
            }
        }
    }
}
