package dev.torus.cli.demo;

import dev.torus.Device;
import dev.torus.memory.Allocator;
import dev.torus.nn.Layer;
import dev.torus.nn.Mlp;
import dev.torus.recompute.SegmentContext;
import dev.torus.serve.Int8Mlp;
import dev.torus.serve.MlpModelFile;
import dev.torus.serve.MlpSpec;
import dev.torus.serve.SafeTensors;
import dev.torus.serve.SafeTensorsFile;
import dev.torus.tensor.Tensor;
import java.nio.file.Path;

/**
 * The demo's check of its saved model as a server would run it: the fp32 file and its int8 weight-only form
 * ({@link Int8Mlp}) predict the held-out set, and the report gives their agreement, both accuracies and the
 * weight bytes of each.
 */
final class Int8ModelCheck {
    record Result(Path file, long fp32WeightBytes, long int8WeightBytes, double agreement, double fp32Accuracy,
                  double int8Accuracy) {
        double weightBytesRatio() {
            return (double) int8WeightBytes / fp32WeightBytes;
        }
    }

    private Int8ModelCheck() {}

    static Result run(Path file, DemoTrainer.Config cfg) {
        DemoData test = DemoData.generate(cfg.seed(), cfg.testRows(), 1);
        try (Allocator a = Allocator.root("demo-int8-check", Long.MAX_VALUE);
             SafeTensorsFile f = SafeTensors.read(file);
             Int8Mlp q = Int8Mlp.load(file)) {
            MlpSpec s = MlpModelFile.spec(f);
            long fp32Bytes = 0;
            try (Mlp mlp = new Mlp(s.inputs(), s.width(), s.blocks(), s.classes(), 0f, s.residual(), Device.cpu(), a, 0)) {
                MlpModelFile.loadInto(f, mlp);
                // the fp32 linear weights the int8 ones replace (norms and biases stay fp32 in both)
                fp32Bytes = 4L * ((long) s.inputs() * s.width() + (long) (s.blocks() - 1) * s.width() * s.width()
                        + (long) s.width() * s.classes());
                int agree = 0;
                int okFp32 = 0;
                int okInt8 = 0;
                SegmentContext ctx = SegmentContext.of(a, 0, 0);
                for (int from = 0; from < test.rows; from += 512) {
                    int n = Math.min(512, test.rows - from);
                    float[] xs = new float[n * DemoData.FEATURES];
                    System.arraycopy(test.x, from * DemoData.FEATURES, xs, 0, xs.length);
                    float[] y8 = new float[n * DemoData.CLASSES];
                    q.infer(xs, n, y8);
                    float[] y32;
                    Tensor h = Tensor.fromArray(a, xs, n, DemoData.FEATURES);
                    for (Layer l : mlp.layers()) {
                        Tensor next = l.forward(h, ctx);
                        h.close();
                        h = next;
                    }
                    y32 = h.toFloatArray();
                    h.close();
                    for (int i = 0; i < n; i++) {
                        int c8 = argMax(y8, i * DemoData.CLASSES);
                        int c32 = argMax(y32, i * DemoData.CLASSES);
                        agree += c8 == c32 ? 1 : 0;
                        okFp32 += c32 == test.y[from + i] ? 1 : 0;
                        okInt8 += c8 == test.y[from + i] ? 1 : 0;
                    }
                }
                return new Result(file, fp32Bytes, q.weightBytes(), (double) agree / test.rows,
                        (double) okFp32 / test.rows, (double) okInt8 / test.rows);
            }
        }
    }

    private static int argMax(float[] v, int at) {
        int best = 0;
        for (int c = 1; c < DemoData.CLASSES; c++) {
            if (v[at + c] > v[at + best]) {
                best = c;
            }
        }
        return best;
    }
}
