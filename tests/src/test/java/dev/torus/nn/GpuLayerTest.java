package dev.torus.nn;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.torus.Device;
import dev.torus.tensor.Tensor;
import dev.torus.recompute.CheckpointPolicy;
import dev.torus.recompute.CheckpointedSequential;
import dev.torus.recompute.SegmentContext;
import dev.torus.testing.Data;
import dev.torus.testing.GpuTest;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.function.Function;
import org.junit.jupiter.api.Test;

/**
 * The layers on CUDA against the same layers on CPU: element-wise layers, softmax
 * cross-entropy and the optimizers bit for bit; Linear (cuBLAS against OpenBLAS)
 * within 1e-5 relative; the checkpointed MLP bit-identical across policies on the GPU.
 */
class GpuLayerTest extends GpuTest {
    static final Device GPU = Device.cuda(0);

    /** Forward output, input gradient and parameter gradients of {@code make}'s layer on {@code d}. */
    List<float[]> run(Function<Device, Layer> make, Device d, float[] x, float[] dy, long... shape) {
        List<float[]> out = new ArrayList<>();
        SegmentContext ctx = SegmentContext.of(root, 5, 99);
        try (Layer l = make.apply(d); Tensor tx = moved(Tensor.fromArray(root, x, shape), d);
             Tensor y = l.forward(tx, ctx); Tensor tdy = moved(Tensor.fromArray(root, dy, y.shape()), d);
             Tensor dx = l.backward(tx, tdy, ctx)) {
            out.add(y.toFloatArray());
            out.add(dx.toFloatArray());
            for (Parameter p : l.parameters()) {
                out.add(p.grad().toFloatArray());
            }
        }
        return out;
    }

    @Test
    void elementwiseLayersMatchTheCpuBitForBit() {
        long seed = Data.freshSeed();
        Random r = new Random(seed);
        int rows = 37;
        int cols = 515;
        float[] x = Data.uniform(r, rows * cols, 4f);
        float[] dy = Data.uniform(r, rows * cols, 1f);
        List<Function<Device, Layer>> layers = List.of(d -> new ReLU(), d -> new Dropout(0.2f),
                d -> new BiasGelu(cols, d, root), d -> new LayerNorm(cols, 1e-5f, d, root));
        for (Function<Device, Layer> make : layers) {
            List<float[]> cpu = run(make, Device.cpu(), x, dy, rows, cols);
            List<float[]> gpu = run(make, GPU, x, dy, rows, cols);
            String name;
            try (Layer l = make.apply(Device.cpu())) {
                name = l.toString();
            }
            for (int i = 0; i < cpu.size(); i++) {
                assertArrayEquals(cpu.get(i), gpu.get(i), name + " output " + i + " (seed " + seed + ")");
            }
        }
    }

    @Test
    void linearOnCublasMatchesOpenBlas() {
        long seed = Data.freshSeed();
        Random r = new Random(seed);
        int rows = 129;
        int in = 257;
        int out = 65;
        float[] x = Data.uniform(r, rows * in, 1f);
        float[] dy = Data.uniform(r, rows * out, 1f);
        Function<Device, Layer> make = d -> new Linear(in, out, true, d, root, 7);
        List<float[]> cpu = run(make, Device.cpu(), x, dy, rows, in);
        List<float[]> gpu = run(make, GPU, x, dy, rows, in);
        for (int i = 0; i < cpu.size(); i++) {
            float[] a = cpu.get(i);
            float[] b = gpu.get(i);
            for (int j = 0; j < a.length; j++) {
                assertEquals(a[j], b[j], 1e-5f * Math.max(1f, Math.abs(a[j])), "Linear output " + i + "[" + j + "]");
            }
        }
    }

    @Test
    void softmaxCrossEntropyAndOptimizersMatchTheCpuBitForBit() {
        long seed = Data.freshSeed();
        Random r = new Random(seed);
        int rows = 50;
        int classes = 37;
        float[] x = Data.uniform(r, rows * classes, 8f);
        int[] labels = new int[rows];
        for (int i = 0; i < rows; i++) {
            labels[i] = r.nextInt(classes);
        }
        float lossCpu;
        float[] gradCpu;
        try (Tensor tx = Tensor.fromArray(root, x, rows, classes); Tensor tl = Tensor.fromArray(root, labels, rows);
             SoftmaxCrossEntropy.Result res = SoftmaxCrossEntropy.lossAndGrad(tx, tl, root)) {
            lossCpu = res.loss();
            gradCpu = res.gradLogits().toFloatArray();
        }
        try (Tensor tx = moved(Tensor.fromArray(root, x, rows, classes), GPU);
             Tensor tl = moved(Tensor.fromArray(root, labels, rows), GPU);
             SoftmaxCrossEntropy.Result res = SoftmaxCrossEntropy.lossAndGrad(tx, tl, root)) {
            assertEquals(lossCpu, res.loss(), 0f, "loss (seed " + seed + ")");
            assertArrayEquals(gradCpu, res.gradLogits().toFloatArray(), "dlogits (seed " + seed + ")");
        }
        float[] g = Data.uniform(r, 3000, 1f);
        assertArrayEquals(optimize(Device.cpu(), g), optimize(GPU, g), "SGD and AdamW (seed " + seed + ")");
    }

    float[] optimize(Device d, float[] g) {
        try (Linear a = new Linear(g.length, 1, false, d, root, 3); Linear b = new Linear(g.length, 1, false, d, root, 4);
             Tensor tg = moved(Tensor.fromArray(root, g, 1, g.length), d);
             Sgd sgd = new Sgd(a.parameters(), 0.1f, 0.9f, 1e-4f, true, root);
             AdamW adam = new AdamW(b.parameters(), 1e-2f, root)) {
            for (int step = 0; step < 3; step++) {
                a.weight().replaceGrad(copy(tg));
                b.weight().replaceGrad(copy(tg));
                sgd.step();
                adam.step();
            }
            float[] pa = a.weight().value().toFloatArray();
            float[] pb = b.weight().value().toFloatArray();
            float[] both = new float[pa.length + pb.length];
            System.arraycopy(pa, 0, both, 0, pa.length);
            System.arraycopy(pb, 0, both, pa.length, pb.length);
            return both;
        }
    }

    Tensor copy(Tensor t) {
        return t.to(t.device());
    }

    @Test
    void checkpointedMlpOnTheGpuIsBitIdenticalAcrossPolicies() {
        float[] ref = null;
        for (CheckpointPolicy policy : new CheckpointPolicy[] {CheckpointPolicy.none(), CheckpointPolicy.sqrtN(),
                CheckpointPolicy.selective(), CheckpointPolicy.budget(4L << 20)}) {
            float[] grads = mlpGrads(policy);
            if (ref == null) {
                ref = grads;
            } else {
                assertArrayEquals(ref, grads, policy + " vs none on " + GPU);
            }
        }
    }

    float[] mlpGrads(CheckpointPolicy policy) {
        Random r = new Random(1);
        float[] x = Data.uniform(r, 64 * 128, 1f);
        int[] labels = new int[64];
        for (int i = 0; i < 64; i++) {
            labels[i] = r.nextInt(10);
        }
        try (Mlp mlp = new Mlp(128, 128, 32, 10, 0.1f, GPU, root, 5);
             CheckpointedSequential net = new CheckpointedSequential(mlp.layers(), policy, root, 42);
             Tensor tx = moved(Tensor.fromArray(root, x, 64, 128), GPU);
             Tensor tl = moved(Tensor.fromArray(root, labels, 64), GPU);
             Tensor out = net.forward(tx); SoftmaxCrossEntropy.Result l = SoftmaxCrossEntropy.lossAndGrad(out, tl, root);
             Tensor dx = net.backward(l.gradLogits())) {
            List<Float> all = new ArrayList<>();
            for (Parameter p : mlp.parameters()) {
                for (float v : p.grad().toFloatArray()) {
                    all.add(v);
                }
            }
            for (float v : dx.toFloatArray()) {
                all.add(v);
            }
            float[] a = new float[all.size()];
            for (int i = 0; i < a.length; i++) {
                a[i] = all.get(i);
            }
            return a;
        }
    }
}
