package dev.torus.jni;

import static dev.torus.internal.NativeAccess.TOKEN;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Random;

import org.junit.jupiter.api.Test;

import dev.torus.DType;
import dev.torus.Device;
import dev.torus.NativeLibrary;
import dev.torus.memory.HostBuffer;
import dev.torus.memory.MemoryBuffer;
import dev.torus.memory.Stream;
import dev.torus.testing.Data;
import dev.torus.testing.TorusTestBase;

/**
 * Blockwise symmetric int8 through the C ABI ({@code torus_quantize_symmetric},
 * {@code torus_stats}) with blocks of 1 to 8 elements, which the ABI accepts but
 * which are narrower than a 16-byte vector for every float type. Compared with a
 * scalar reference, bit for bit, for FLOAT32, FLOAT16 and BFLOAT16 inputs, whole
 * and ragged last blocks, on {@link #device()}.
 */
abstract class SmallBlockSuite extends TorusTestBase {
    static final int[] BLOCKS = {1, 2, 4, 8};
    static final int[] SIZES = {1, 7, 64, 1027, 4096 + 5};

    abstract Device device();

    @Test
    void blocksNarrowerThanAVectorQuantizeExactly() {
        long seed = Data.freshSeed();
        Random r = new Random(seed);
        for (DType dt : new DType[] {DType.FLOAT32, DType.FLOAT16, DType.BFLOAT16}) {
            for (int n : SIZES) {
                float[] x = Data.uniform(r, n, 3f);
                for (int block : BLOCKS) {
                    check(dt, x, block, "seed " + seed + ", " + dt + ", n " + n + ", block " + block);
                }
            }
        }
    }

    private void check(DType dt, float[] x, int block, String what) {
        Device d = device();
        int n = x.length;
        int groups = (n + block - 1) / block;
        int esz = dt.byteSize();
        try (MemoryBuffer x32 = root.allocate(d, 4L * n); MemoryBuffer xin = root.allocate(d, (long) esz * n);
             MemoryBuffer back = root.allocate(d, 4L * n); MemoryBuffer q = root.allocate(d, n);
             MemoryBuffer scales = root.allocate(d, 4L * groups); MemoryBuffer amax = root.allocate(d, 4L * groups)) {
            upload(x, x32);
            int dev = d.nativeCode();
            // the input in dt, and its exact float32 value for the reference
            NativeLibrary.check(TorusNative.torus_cast(dev, 0, DType.FLOAT32.code(), x32.address(TOKEN), dt.code(),
                    xin.address(TOKEN), n), "cast");
            NativeLibrary.check(TorusNative.torus_cast(dev, 0, dt.code(), xin.address(TOKEN), DType.FLOAT32.code(),
                    back.address(TOKEN), n), "cast back");
            NativeLibrary.check(TorusNative.torus_quantize_symmetric(dev, 0, dt.code(), xin.address(TOKEN), n, 1, 1, n,
                    block, q.address(TOKEN), scales.address(TOKEN), 0, 0), "quantize_symmetric " + what);
            NativeLibrary.check(TorusNative.torus_stats(dev, 0, dt.code(), xin.address(TOKEN), n, 1, 1, n, block,
                    amax.address(TOKEN), 0, 0), "stats " + what);
            float[] v = new float[n];
            download(back, 4L * n).asFloatBuffer().get(v);
            ByteBuffer gotQ = download(q, n);
            ByteBuffer gotS = download(scales, 4L * groups);
            ByteBuffer gotA = download(amax, 4L * groups);
            for (int g = 0; g < groups; g++) {
                float m = 0f;
                for (int i = g * block; i < Math.min(n, (g + 1) * block); i++) {
                    m = Math.max(m, Math.abs(v[i]));
                }
                float scale = m / 127f;
                float inv = scale == 0f ? 0f : 1f / scale;
                assertEquals(Float.floatToRawIntBits(m), gotA.getInt(4 * g), "absmax[" + g + "] " + what);
                assertEquals(Float.floatToRawIntBits(scale), gotS.getInt(4 * g), "scale[" + g + "] " + what);
                for (int i = g * block; i < Math.min(n, (g + 1) * block); i++) {
                    int ref = (int) Math.max(-127f, Math.min(127f, (float) Math.rint(v[i] * inv)));
                    assertEquals(ref, gotQ.get(i), "q[" + i + "] " + what);
                }
            }
        }
    }

    private void upload(float[] x, MemoryBuffer dst) {
        try (HostBuffer h = root.allocateHost(dst.byteSize())) {
            h.view(0, h.byteSize()).asFloatBuffer().put(x);
            copy(h, dst);
        }
    }

    /** The buffer's first {@code bytes} bytes, little-endian, on the heap. */
    private ByteBuffer download(MemoryBuffer src, long bytes) {
        try (HostBuffer h = root.allocateHost(bytes)) {
            copy(src, h);
            ByteBuffer out = ByteBuffer.allocate((int) bytes).order(ByteOrder.LITTLE_ENDIAN);
            out.put(h.view(0, bytes));
            return out.flip();
        }
    }

    private void copy(MemoryBuffer src, MemoryBuffer dst) {
        Device gpu = src.device().isCuda() ? src.device() : dst.device();
        Stream s = Stream.defaultStream(gpu);
        s.copy(src, 0, dst, 0, Math.min(src.byteSize(), dst.byteSize()));
        s.synchronize();
    }
}
