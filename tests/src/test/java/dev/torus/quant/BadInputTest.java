package dev.torus.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import dev.torus.CudaUnavailableException;
import dev.torus.DType;
import dev.torus.Device;
import dev.torus.tensor.Tensor;
import dev.torus.testing.TorusTestBase;

/** Every bad input is rejected in Java with a message naming the argument and what was expected. */
class BadInputTest extends TorusTestBase {

    static void rejects(Class<? extends Throwable> type, Executable call, String... fragments) {
        Throwable e = assertThrows(type, call);
        for (String f : fragments) {
            assertTrue(e.getMessage().contains(f), "message '" + e.getMessage() + "' should mention '" + f + "'");
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 1, 32, 63, 65, 100, 96, 8192, -64, Integer.MIN_VALUE})
    void blockSizeMustBeAPowerOfTwoBetween64And4096(int block) {
        rejects(IllegalArgumentException.class, () -> QuantSpec.int8Symmetric().blockwise(block), "blockSize",
                "power of two in [64, 4096]", String.valueOf(block));
    }

    @Test
    void scalesMustBeFiniteAndPositive() {
        for (float s : new float[] {0f, -0f, -1f, Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY}) {
            rejects(IllegalArgumentException.class, () -> QuantSpec.affine(DType.UINT8).perTensor(s, 0), "scale",
                    "finite scale > 0");
        }
        rejects(IllegalArgumentException.class,
                () -> QuantSpec.affine(DType.INT8).perChannel(new float[] {1f, 0f}, new int[] {0, 0}, 0), "scales[1]");
    }

    @Test
    void zeroPointsMustBeInTheRangeOfTheDtype() {
        rejects(IllegalArgumentException.class, () -> QuantSpec.affine(DType.UINT8).perTensor(1f, 256), "zeroPoint",
                "[0, 255]", "256");
        rejects(IllegalArgumentException.class, () -> QuantSpec.affine(DType.UINT8).perTensor(1f, -1), "zeroPoint");
        rejects(IllegalArgumentException.class, () -> QuantSpec.affine(DType.INT8).perTensor(1f, 128), "[-128, 127]");
        rejects(IllegalArgumentException.class,
                () -> QuantSpec.affine(DType.INT8).perChannel(new float[] {1f}, new int[] {-129}, 0), "zeroPoints[0]");
        rejects(IllegalArgumentException.class,
                () -> QuantSpec.affine(DType.INT8).perChannel(new float[] {1f, 1f}, new int[] {0}, 0), "zeroPoints",
                "expected 2");
        rejects(IllegalArgumentException.class, () -> QuantSpec.affine(DType.FLOAT16), "dtype", "INT8 or UINT8");
    }

    @Test
    void axisMustExistInTheTensor() {
        try (Tensor t = Tensor.fromArray(root, new float[6], 2, 3)) {
            rejects(IllegalArgumentException.class, () -> Quantizer.quantize(t, QuantSpec.int8Symmetric().perChannel(2)),
                    "axis", "[-2, 1]", "2");
            rejects(IllegalArgumentException.class, () -> Quantizer.quantize(t, QuantSpec.int8Symmetric().perChannel(-3)),
                    "axis");
        }
        try (Tensor scalar = Tensor.fromArray(root, new float[] {1f})) {
            rejects(IllegalArgumentException.class,
                    () -> Quantizer.quantize(scalar, QuantSpec.int8Symmetric().perChannel(0)), "axis", "rank >= 1");
        }
    }

    @Test
    void perChannelScalesMustMatchTheChannelCount() {
        QuantSpec spec = QuantSpec.affine(DType.UINT8).perChannel(new float[] {1f, 1f}, new int[] {0, 0}, 1);
        try (Tensor t = Tensor.fromArray(root, new float[6], 2, 3)) {
            rejects(IllegalArgumentException.class, () -> Quantizer.quantize(t, spec), "expected 3 scales", "got 2");
        }
    }

    @Test
    void inputsMustBeFloatTensorsAndOpen() {
        try (Tensor ints = Tensor.fromArray(root, new int[] {1, 2}, 2)) {
            rejects(IllegalArgumentException.class, () -> Quantizer.quantize(ints, QuantSpec.int8Symmetric().perTensor()),
                    "x", "FLOAT32, FLOAT16 or BFLOAT16", "INT32");
            rejects(IllegalArgumentException.class, () -> Quantizer.cast(ints, DType.FLOAT16), "x", "INT32");
        }
        Tensor closed = Tensor.fromArray(root, new float[] {1f}, 1);
        closed.close();
        rejects(IllegalStateException.class, () -> Quantizer.quantize(closed, QuantSpec.int8Symmetric().perTensor()),
                "closed");
        rejects(IllegalStateException.class, () -> Quantizer.cast(closed, DType.FLOAT16), "closed");
        rejects(IllegalStateException.class, closed::toFloatArray, "closed");
        rejects(IllegalArgumentException.class, () -> Quantizer.quantize(null, QuantSpec.int8Symmetric().perTensor()), "x");
        try (Tensor t = Tensor.fromArray(root, new float[] {1f}, 1)) {
            rejects(IllegalArgumentException.class, () -> Quantizer.quantize(t, null), "spec");
            rejects(IllegalArgumentException.class, () -> Quantizer.cast(t, DType.INT8), "to", "INT8");
            rejects(IllegalArgumentException.class, () -> Quantizer.cast(t, null), "to");
            try (QuantizedTensor q = Quantizer.quantize(t, QuantSpec.int8Symmetric().perTensor())) {
                rejects(IllegalArgumentException.class, () -> Quantizer.dequantize(q, DType.INT32), "out", "INT32");
            }
        }
    }

    @Test
    void closedQuantizedTensorIsRejected() {
        QuantizedTensor q;
        try (Tensor t = Tensor.fromArray(root, new float[] {1f, 2f}, 2)) {
            q = Quantizer.quantize(t, QuantSpec.int8Symmetric().perTensor());
        }
        q.close();
        rejects(IllegalStateException.class, () -> Quantizer.dequantize(q, DType.FLOAT32), "closed");
        rejects(IllegalStateException.class, q::values, "closed");
    }

    @Test
    void shapeDtypeAndSizeMismatchesAreRejected() {
        try (Tensor x = Tensor.fromArray(root, new float[6], 2, 3); Tensor y = Tensor.zeros(root, DType.FLOAT16, Device.cpu(), 3, 2);
             Tensor z = Tensor.zeros(root, DType.FLOAT16, Device.cpu(), 6)) {
            rejects(IllegalArgumentException.class, () -> Quantizer.castInto(x, y), "y", "expected shape [2, 3]", "[3, 2]");
            rejects(IllegalArgumentException.class, () -> Quantizer.castInto(x, z), "y", "[6]");
            try (QuantizedTensor q = Quantizer.quantize(x, QuantSpec.int8Symmetric().perTensor())) {
                rejects(IllegalArgumentException.class, () -> Quantizer.dequantizeInto(q, y), "y", "shape");
            }
        }
        rejects(IllegalArgumentException.class, () -> Tensor.fromArray(root, new float[5], 2, 3), "shape", "6 elements",
                "5");
        rejects(IllegalArgumentException.class, () -> Tensor.fromArray(root, new float[0], 2, -3), "shape", "dimension 1",
                ">= 0");
        rejects(IllegalArgumentException.class, () -> Tensor.fromBytes(root, DType.FLOAT32, new byte[7], 2), "bytes",
                "expected 8 bytes");
        rejects(IllegalArgumentException.class, () -> Tensor.fromBits(root, DType.FLOAT32, new short[2], 2), "dtype");
        rejects(IllegalArgumentException.class, () -> Tensor.fromArray(root, new float[1], Long.MAX_VALUE, 4), "overflow");
    }

    @Test
    void assembledQuantizedTensorsMustAgree() {
        QuantSpec block = QuantSpec.int8Symmetric().blockwise(64);
        try (Tensor v = Tensor.zeros(root, DType.INT8, Device.cpu(), 130);
             Tensor u = Tensor.zeros(root, DType.UINT8, Device.cpu(), 130);
             Tensor s2 = Tensor.zeros(root, DType.FLOAT32, Device.cpu(), 2);
             Tensor s3h = Tensor.zeros(root, DType.FLOAT16, Device.cpu(), 3);
             Tensor zp = Tensor.zeros(root, DType.INT32, Device.cpu(), 3)) {
            rejects(IllegalArgumentException.class, () -> QuantizedTensor.of(u, s2, null, block), "values",
                    "expected dtype INT8", "UINT8");
            rejects(IllegalArgumentException.class, () -> QuantizedTensor.of(v, s2, null, block), "scales",
                    "expected 3 elements", "got 2");
            rejects(IllegalArgumentException.class, () -> QuantizedTensor.of(v, s3h, null, block), "scales", "FLOAT32");
            try (Tensor s3 = Tensor.zeros(root, DType.FLOAT32, Device.cpu(), 3)) {
                rejects(IllegalArgumentException.class, () -> QuantizedTensor.of(v, s3, zp, block), "zeroPoints",
                        "null for a symmetric spec");
            }
            // scales must follow QuantSpec's rule: finite, positive (0 allowed for a symmetric all-zero group)
            for (float bad : new float[] {Float.NaN, -1f, Float.POSITIVE_INFINITY, -0f}) {
                try (Tensor sb = Tensor.fromArray(root, new float[] {0.5f, bad, 1f}, 3)) {
                    rejects(IllegalArgumentException.class, () -> QuantizedTensor.of(v, sb, null, block), "scales[1]",
                            "expected a finite number >= 0", String.valueOf(bad));
                }
            }
            QuantSpec affine = QuantSpec.affine(DType.UINT8).perTensor(0.5f, 3);
            try (Tensor one = Tensor.zeros(root, DType.UINT8, Device.cpu(), 130);
                 Tensor zero = Tensor.zeros(root, DType.FLOAT32, Device.cpu(), 1);
                 Tensor zp1 = Tensor.zeros(root, DType.INT32, Device.cpu(), 1)) {
                rejects(IllegalArgumentException.class, () -> QuantizedTensor.of(one, zero, zp1, affine), "scales[0]",
                        "> 0 for an affine spec", "got 0.0");
            }
        }
    }

    @Test
    void cudaTensorsWithoutAGpuFailCleanly() {
        if (Device.isCudaAvailable()) {
            return; // Covered by the gpu suite on machines that have one.
        }
        rejects(CudaUnavailableException.class, () -> Tensor.zeros(root, DType.FLOAT32, Device.cuda(0), 4),
                "CUDA is not available");
        try (Tensor t = Tensor.fromArray(root, new float[] {1f}, 1)) {
            rejects(CudaUnavailableException.class, () -> t.to(Device.cuda(0)), "CUDA");
        }
        rejects(CudaUnavailableException.class, () -> root.allocateHost(64, true), "CUDA");
        rejects(IllegalArgumentException.class, () -> Device.cuda(-1), "ordinal", ">= 0");
        assertEquals(0, root.allocatedBytes(), "failed allocations reserve nothing");
    }
}
