package dev.torus.nn;

import static dev.torus.internal.NativeAccess.TOKEN;

import dev.torus.Device;
import dev.torus.NativeLibrary;
import dev.torus.tensor.Tensor;
import dev.torus.jni.TorusNative;
import dev.torus.memory.Allocator;
import dev.torus.recompute.SegmentContext;
import java.util.List;
import java.util.SplittableRandom;

/**
 * {@code y = x W^T + b} over the last dimension: W is {@code [out, in]}, b is
 * {@code [out]} (optional). GEMMs run on OpenBLAS for CPU tensors and cuBLAS for
 * CUDA tensors. Initialised like torch.nn.Linear: W and b uniform in
 * {@code [-1/sqrt(in), 1/sqrt(in)]}, from a seed.
 *
 * <p>Backward: {@code dx = dy W}, {@code dW += dy^T x}, {@code db += column sums of dy}.
 * Not cheap to recompute (the selective policy keeps its output).
 */
public final class Linear implements Layer {
    private final long in;
    private final long out;
    private final Device device;
    private final Parameter weight;
    private final Parameter bias;
    /** The GEMM given by {@link #useGemm}, or null for Torus's own BLAS. */
    private volatile Gemm gemm;

    /**
     * @param allocator where the parameters (values and gradients) live; the layer owns them
     */
    public Linear(long in, long out, boolean withBias, Device device, Allocator allocator, long seed) {
        this(in, out, withBias, device, allocator, seed, 1.0 / Math.sqrt(in));
    }

    /**
     * As above, with weights uniform in {@code [-initBound, initBound]} (for example
     * {@code sqrt(6 / in)}, He initialisation, for deep stacks of GELU/ReLU layers).
     * The bias, if any, stays uniform in {@code [-1/sqrt(in), 1/sqrt(in)]}.
     */
    public Linear(long in, long out, boolean withBias, Device device, Allocator allocator, long seed,
                  double initBound) {
        Checks.positive("in", in);
        Checks.positive("out", out);
        Checks.notNull("device", device);
        Checks.notNull("allocator", allocator);
        if (in * out > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("in * out must be <= " + Integer.MAX_VALUE + ", got " + in + " * " + out);
        }
        this.in = in;
        this.out = out;
        this.device = device;
        if (!(initBound >= 0) || Double.isInfinite(initBound)) {
            throw new IllegalArgumentException("initBound must be a finite number >= 0, got " + initBound);
        }
        SplittableRandom rnd = new SplittableRandom(seed);
        double bound = 1.0 / Math.sqrt(in);
        this.weight = Parameter.of("weight", allocator, device, uniform(rnd, (int) (in * out), initBound), out, in);
        Parameter b = null;
        if (withBias) {
            try {
                b = Parameter.of("bias", allocator, device, uniform(rnd, (int) out, bound), out);
            } catch (RuntimeException e) {
                weight.close();
                throw e;
            }
        }
        this.bias = b;
    }

    static float[] uniform(SplittableRandom rnd, int n, double bound) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) ((rnd.nextDouble() * 2 - 1) * bound);
        }
        return v;
    }

    /**
     * Multiplies through {@code gemm} from now on (for example a JCublas handle), or through
     * Torus's own BLAS again when {@code gemm} is null. The caller keeps owning {@code gemm}
     * and must keep it usable while the layer runs; the layer never closes it.
     *
     * @throws IllegalArgumentException if {@code gemm} works on a device other than this layer's
     */
    public void useGemm(Gemm gemm) {
        if (gemm != null && !device.equals(gemm.device())) {
            throw new IllegalArgumentException("gemm: expected a GEMM on " + device + " (this layer's device), got one on "
                    + gemm.device() + " (" + gemm + ")");
        }
        this.gemm = gemm;
    }

    /** The GEMM given by {@link #useGemm}, or null when the layer uses Torus's own BLAS. */
    public Gemm gemm() {
        return gemm;
    }

    public Parameter weight() {
        return weight;
    }

    /** The bias, or null when built without one. */
    public Parameter bias() {
        return bias;
    }

    @Override
    public List<Parameter> parameters() {
        return bias == null ? List.of(weight) : List.of(weight, bias);
    }

    @Override
    public long[] outputShape(long[] inputShape) {
        return Checks.withLast(inputShape, out);
    }

    @Override
    public Tensor forward(Tensor x, SegmentContext ctx) {
        long rows = Checks.rows("Linear", "input", x, in, device);
        return Ops.filled(ctx.allocator(), device, outputShape(x.shape()), y -> {
            Ops.gemm(gemm, false, true, rows, out, in, x, in, weight.value(), in, 0f, y, out, "Linear forward");
            if (bias != null && rows > 0) {
                NativeLibrary.check(TorusNative.torus_bias_add(Ops.device(y), 0L, y.dataAddress(TOKEN),
                        bias.value().dataAddress(TOKEN), rows, out), "Linear forward (bias)");
            }
        });
    }

    @Override
    public Tensor backward(Tensor x, Tensor dy, SegmentContext ctx) {
        long rows = checkBackward(x, dy);
        return Ops.filled(ctx.allocator(), device, x.shape(), dx -> {
            Ops.gemm(gemm, false, false, rows, in, out, dy, out, weight.value(), in, 0f, dx, in, "Linear backward (dx)");
            weightGradients(rows, x, dy);
        });
    }

    @Override
    public boolean splitsBackward() {
        return true;
    }

    @Override
    public Tensor backwardInput(Tensor x, Tensor dy, SegmentContext ctx) {
        long rows = checkBackward(x, dy);
        return Ops.filled(ctx.allocator(), device, x.shape(), dx ->
                Ops.gemm(gemm, false, false, rows, in, out, dy, out, weight.value(), in, 0f, dx, in, "Linear backward (dx)"));
    }

    @Override
    public void backwardWeights(Tensor x, Tensor dy, SegmentContext ctx) {
        weightGradients(checkBackward(x, dy), x, dy);
    }

    private long checkBackward(Tensor x, Tensor dy) {
        long rows = Checks.rows("Linear", "input", x, in, device);
        Checks.float32("gradOutput", dy);
        if (!java.util.Arrays.equals(dy.shape(), outputShape(x.shape()))) {
            throw new IllegalArgumentException("Linear: gradOutput must have shape "
                    + java.util.Arrays.toString(outputShape(x.shape())) + ", got " + java.util.Arrays.toString(dy.shape()));
        }
        Checks.sameDevice("Linear", "gradOutput", dy, device);
        return rows;
    }

    private void weightGradients(long rows, Tensor x, Tensor dy) {
        Ops.gemm(gemm, true, false, out, in, rows, dy, out, x, in, 1f, weight.grad(), in, "Linear backward (dW)");
        if (bias != null) {
            Ops.columnSum(dy, bias.grad(), rows, out, true, "Linear backward (db)");
        }
    }

    @Override
    public String toString() {
        return "Linear(" + in + ", " + out + (bias == null ? ", no bias" : "") + ")";
    }
}
