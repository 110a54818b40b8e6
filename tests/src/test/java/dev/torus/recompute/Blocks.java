package dev.torus.recompute;

import dev.torus.DType;
import dev.torus.tensor.Tensor;
import dev.torus.nn.RecomputeKernels;
import dev.torus.memory.Allocator;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * Test segments built on the recompute kernels, each owning its parameters and
 * their gradients. {@link Scale} (y = x * w, elementwise) stands in for a GEMM: it
 * says it is expensive to recompute, so the selective policy keeps its outputs.
 */
final class Blocks {
    private Blocks() {}

    abstract static class Param implements Segment, AutoCloseable {
        final List<Tensor> owned = new ArrayList<>();

        Tensor param(Allocator a, float[] v) {
            Tensor t = Tensor.fromArray(a, v, v.length);
            owned.add(t);
            return t;
        }

        static void accumulate(Tensor into, Tensor add) {
            float[] a = into.toFloatArray();
            float[] b = add.toFloatArray();
            for (int i = 0; i < a.length; i++) {
                a[i] += b[i];
            }
            try (Tensor t = Tensor.fromArray(a, a.length)) {
                float[] copy = t.toFloatArray();
                ((dev.torus.memory.HostBuffer) into.buffer()).view(0, into.byteSize())
                        .order(java.nio.ByteOrder.nativeOrder()).asFloatBuffer().put(copy);
            }
        }

        List<float[]> grads() {
            List<float[]> g = new ArrayList<>();
            for (int i = 1; i < owned.size(); i += 2) {
                g.add(owned.get(i).toFloatArray());
            }
            return g;
        }

        @Override
        public void close() {
            owned.forEach(Tensor::close);
        }
    }

    static final class BiasGelu extends Param {
        final Tensor bias;
        final Tensor dbias;

        BiasGelu(Allocator a, Random r, int cols) {
            bias = param(a, dev.torus.testing.Data.uniform(r, cols, 0.5f));
            dbias = param(a, new float[cols]);
        }

        @Override
        public Tensor forward(Tensor x, SegmentContext ctx) {
            Tensor y = Tensor.empty(ctx.allocator(), DType.FLOAT32, x.device(), x.shape());
            RecomputeKernels.biasGeluForward(x, bias, y);
            return y;
        }

        @Override
        public Tensor backward(Tensor x, Tensor dy, SegmentContext ctx) {
            Tensor dx = Tensor.empty(ctx.allocator(), DType.FLOAT32, x.device(), x.shape());
            try (Tensor db = Tensor.empty(ctx.allocator(), DType.FLOAT32, x.device(), bias.shape())) {
                RecomputeKernels.biasGeluBackward(x, bias, dy, dx, db);
                accumulate(dbias, db);
            }
            return dx;
        }

        @Override
        public boolean cheapToRecompute() {
            return true;
        }
    }

    static final class LayerNorm extends Param {
        final Tensor gamma;
        final Tensor dgamma;
        final Tensor beta;
        final Tensor dbeta;

        LayerNorm(Allocator a, Random r, int cols) {
            float[] g = dev.torus.testing.Data.uniform(r, cols, 0.2f);
            for (int i = 0; i < cols; i++) {
                g[i] += 1f;
            }
            gamma = param(a, g);
            dgamma = param(a, new float[cols]);
            beta = param(a, dev.torus.testing.Data.uniform(r, cols, 0.2f));
            dbeta = param(a, new float[cols]);
        }

        @Override
        public Tensor forward(Tensor x, SegmentContext ctx) {
            Tensor y = Tensor.empty(ctx.allocator(), DType.FLOAT32, x.device(), x.shape());
            RecomputeKernels.layerNormForward(x, gamma, beta, y, null, null, 1e-5f);
            return y;
        }

        @Override
        public Tensor backward(Tensor x, Tensor dy, SegmentContext ctx) {
            Tensor dx = Tensor.empty(ctx.allocator(), DType.FLOAT32, x.device(), x.shape());
            try (Tensor dg = Tensor.empty(ctx.allocator(), DType.FLOAT32, x.device(), gamma.shape());
                 Tensor db = Tensor.empty(ctx.allocator(), DType.FLOAT32, x.device(), beta.shape())) {
                RecomputeKernels.layerNormBackward(x, gamma, dy, dx, dg, db, 1e-5f);
                accumulate(dgamma, dg);
                accumulate(dbeta, db);
            }
            return dx;
        }

        @Override
        public boolean cheapToRecompute() {
            return true;
        }
    }

    static final class Dropout implements Segment {
        final float p;

        Dropout(float p) {
            this.p = p;
        }

        @Override
        public Tensor forward(Tensor x, SegmentContext ctx) {
            Tensor y = Tensor.empty(ctx.allocator(), DType.FLOAT32, x.device(), x.shape());
            RecomputeKernels.dropout(x, y, p, ctx.seed(), ctx.rngOffset());
            return y;
        }

        @Override
        public Tensor backward(Tensor x, Tensor dy, SegmentContext ctx) {
            Tensor dx = Tensor.empty(ctx.allocator(), DType.FLOAT32, x.device(), x.shape());
            RecomputeKernels.dropout(dy, dx, p, ctx.seed(), ctx.rngOffset());
            return dx;
        }

        @Override
        public boolean cheapToRecompute() {
            return true;
        }
    }

    /** y = x * w (elementwise, w per column): the stand-in for an expensive GEMM. */
    static final class Scale extends Param {
        final Tensor w;
        final Tensor dw;
        final int cols;

        Scale(Allocator a, Random r, int cols) {
            float[] v = dev.torus.testing.Data.uniform(r, cols, 0.5f);
            for (int i = 0; i < cols; i++) {
                v[i] += 1f;
            }
            w = param(a, v);
            dw = param(a, new float[cols]);
            this.cols = cols;
        }

        @Override
        public Tensor forward(Tensor x, SegmentContext ctx) {
            float[] xv = x.toFloatArray();
            float[] wv = w.toFloatArray();
            for (int i = 0; i < xv.length; i++) {
                xv[i] *= wv[i % cols];
            }
            return Tensor.fromArray(ctx.allocator(), xv, x.shape());
        }

        @Override
        public Tensor backward(Tensor x, Tensor dy, SegmentContext ctx) {
            float[] xv = x.toFloatArray();
            float[] g = dy.toFloatArray();
            float[] wv = w.toFloatArray();
            float[] dwv = dw.toFloatArray();
            float[] dx = new float[g.length];
            for (int i = 0; i < g.length; i++) {
                dx[i] = g[i] * wv[i % cols];
                dwv[i % cols] += g[i] * xv[i];
            }
            ((dev.torus.memory.HostBuffer) dw.buffer()).view(0, dw.byteSize())
                    .order(java.nio.ByteOrder.nativeOrder()).asFloatBuffer().put(dwv);
            return Tensor.fromArray(ctx.allocator(), dx, x.shape());
        }
    }
}
