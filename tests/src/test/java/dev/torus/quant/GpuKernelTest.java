package dev.torus.quant;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;

import dev.torus.Device;
import dev.torus.testing.GpuTest;

/**
 * The kernel contract on CUDA device 0. Both devices are checked against the same
 * reference bits, so passing here means CPU and GPU results are bit-identical.
 */
@Tag("gpu")
class GpuKernelTest extends KernelSuite {
    @BeforeEach
    void requireCuda() {
        GpuTest.requireCuda();
    }

    @Override
    protected Device device() {
        return Device.cuda(0);
    }
}
