package dev.torus.parallel;

import dev.torus.tensor.Tensor;
import dev.torus.memory.HostBuffer;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/** A 64-bit hash of a tensor's bytes, for comparing replicas; not cryptographic. */
final class ParameterHash {
    private static final long WINDOW = 1L << 30;
    private static final long M1 = 0x9E3779B97F4A7C15L;
    private static final long M2 = 0xC2B2AE3D27D4EB4FL;

    private ParameterHash() {}

    static long of(Tensor t) {
        long h = M1 ^ t.byteSize();
        if (t.device().isCpu()) {
            HostBuffer hb = (HostBuffer) t.buffer();
            for (long off = 0; off < t.byteSize(); off += WINDOW) {
                h = mix(h, hb.view(off, Math.min(WINDOW, t.byteSize() - off)));
            }
        } else {
            h = mix(h, ByteBuffer.wrap(t.toByteArray()));
        }
        return finish(h);
    }

    private static long mix(long h, ByteBuffer b) {
        b.order(ByteOrder.LITTLE_ENDIAN);
        int n = b.remaining();
        int i = 0;
        for (; i + 8 <= n; i += 8) {
            h = Long.rotateLeft(h ^ (b.getLong(i) * M2), 31) * M1;
        }
        for (; i < n; i++) {
            h = Long.rotateLeft(h ^ ((b.get(i) & 0xffL) * M2), 31) * M1;
        }
        return h;
    }

    private static long finish(long h) {
        h ^= h >>> 33;
        h *= M2;
        h ^= h >>> 29;
        return h;
    }
}
