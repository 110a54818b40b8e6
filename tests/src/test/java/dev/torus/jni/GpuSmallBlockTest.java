package dev.torus.jni;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;

import dev.torus.Device;
import dev.torus.testing.GpuTest;

/**
 * {@link SmallBlockSuite} on CUDA device 0, where blocks under 16 bytes once took the
 * 16-byte vector path and read past their block (a misaligned-address fault for
 * most of them).
 */
@Tag("gpu")
class GpuSmallBlockTest extends SmallBlockSuite {
    @BeforeEach
    void cuda() {
        GpuTest.requireCuda();
    }

    @Override
    Device device() {
        return Device.cuda(0);
    }
}
