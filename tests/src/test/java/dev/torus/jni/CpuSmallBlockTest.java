package dev.torus.jni;

import dev.torus.Device;

/** {@link SmallBlockSuite} on the CPU kernels. */
class CpuSmallBlockTest extends SmallBlockSuite {
    @Override
    Device device() {
        return Device.cpu();
    }
}
