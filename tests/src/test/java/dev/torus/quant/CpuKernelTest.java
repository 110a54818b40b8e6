package dev.torus.quant;

import dev.torus.Device;

/** The kernel contract on the CPU. */
class CpuKernelTest extends KernelSuite {
    @Override
    protected Device device() {
        return Device.cpu();
    }
}
