package dev.torus.nn;

import static dev.torus.internal.NativeAccess.TOKEN;

import dev.torus.DType;
import dev.torus.NativeLibrary;
import dev.torus.tensor.Tensor;
import dev.torus.jni.TorusNative;
import dev.torus.memory.Allocator;
import java.util.Arrays;

/**
 * Softmax cross-entropy with integer class labels and mean reduction, like
 * {@code torch.nn.functional.cross_entropy(logits, labels)}: the loss is the mean
 * over rows of {@code logsumexp(x[r]) - x[r, label[r]]}, and the gradient is
 * {@code (softmax(x[r]) - onehot(label[r])) / rows}, computed in the same pass.
 *
 * <p>Logits are FLOAT32 {@code [rows, classes]}; labels are INT32 {@code [rows]} on
 * the same device. Labels of CPU tensors are checked to lie in {@code [0, classes)};
 * on a GPU an out-of-range label yields a NaN loss instead (checking would need a
 * device-to-host copy per step).
 */
public final class SoftmaxCrossEntropy {
    private SoftmaxCrossEntropy() {}

    /** The mean loss and the gradient of the logits; the caller owns (and closes) the gradient. */
    public record Result(float loss, Tensor gradLogits) implements AutoCloseable {
        @Override
        public void close() {
            gradLogits.close();
        }
    }

    /** The mean loss only. */
    public static float loss(Tensor logits, Tensor labels) {
        return run(logits, labels, null, Allocator.defaultAllocator());
    }

    /** The mean loss and its gradient with respect to the logits, allocated from {@code allocator}. */
    public static Result lossAndGrad(Tensor logits, Tensor labels, Allocator allocator) {
        Checks.notNull("allocator", allocator);
        check(logits, labels);
        Tensor grad = Tensor.empty(allocator, DType.FLOAT32, logits.device(), logits.shape());
        try {
            return new Result(run(logits, labels, grad, allocator), grad);
        } catch (RuntimeException e) {
            grad.close();
            throw e;
        }
    }

    private static void check(Tensor logits, Tensor labels) {
        Checks.float32("logits", logits);
        if (logits.rank() != 2 || logits.dim(1) < 1) {
            throw new IllegalArgumentException("logits must have shape [rows, classes] with classes >= 1, got "
                    + Arrays.toString(logits.shape()));
        }
        Checks.notNull("labels", labels);
        labels.ensureOpen();
        if (labels.dtype() != DType.INT32) {
            throw new IllegalArgumentException("labels must be INT32, got " + labels.dtype());
        }
        if (labels.rank() != 1 || labels.dim(0) != logits.dim(0)) {
            throw new IllegalArgumentException("labels must have shape [" + logits.dim(0) + "] (one per row of logits), got "
                    + Arrays.toString(labels.shape()));
        }
        if (!labels.device().equals(logits.device())) {
            throw new IllegalArgumentException("labels must be on " + logits.device() + " (the logits' device), got "
                    + labels.device());
        }
        if (labels.device().isCpu()) {
            int[] l = labels.toIntArray();
            for (int i = 0; i < l.length; i++) {
                if (l[i] < 0 || l[i] >= logits.dim(1)) {
                    throw new IllegalArgumentException("labels[" + i + "] must be in [0, " + logits.dim(1) + "), got "
                            + l[i]);
                }
            }
        }
    }

    private static float run(Tensor logits, Tensor labels, Tensor grad, Allocator scratch) {
        if (grad == null) {
            check(logits, labels);
        }
        long rows = logits.dim(0);
        long cols = logits.dim(1);
        if (rows == 0) {
            return Float.NaN; // the mean over no rows, as in torch
        }
        try (Tensor losses = Tensor.empty(scratch, DType.FLOAT32, logits.device(), rows)) {
            NativeLibrary.check(TorusNative.torus_softmax_xent(Ops.device(logits), 0L, logits.dataAddress(TOKEN),
                    labels.dataAddress(TOKEN), losses.dataAddress(TOKEN), grad == null ? 0L : grad.dataAddress(TOKEN), rows, cols,
                    (float) (1.0 / rows)), "softmax cross-entropy");
            float[] l = losses.toFloatArray();
            double sum = 0;
            for (float v : l) {
                sum += v;
            }
            return (float) (sum / rows);
        }
    }
}
