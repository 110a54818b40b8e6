package dev.torus.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.torus.Device;
import dev.torus.NativeLibrary;
import org.junit.jupiter.api.Test;

/**
 * The kernel contract on the CPU. The build runs it twice: on the best instruction set the machine
 * has, and again with {@code TORUS_CPU_ISA=avx2} so that the AVX2 build is covered on AVX-512 machines.
 */
class CpuKernelTest extends KernelSuite {
    @Override
    protected Device device() {
        return Device.cpu();
    }

    /** A forced instruction set reaches the kernels (avx2 falls back to base only where AVX2 is missing). */
    @Test
    void forcedInstructionSetIsTheOneInUse() {
        String forced = System.getenv("TORUS_CPU_ISA");
        assumeTrue(forced != null, "TORUS_CPU_ISA is not set in this run");
        String isa = NativeLibrary.cpuIsa();
        if (forced.equals("base")) {
            assertEquals("base", isa);
        } else if (forced.equals("avx2")) {
            assertTrue(isa.equals("avx2") || isa.equals("base"), "TORUS_CPU_ISA=avx2 but the kernels use " + isa);
        }
    }
}
