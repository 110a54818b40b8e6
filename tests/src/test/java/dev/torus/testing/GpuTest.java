package dev.torus.testing;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;

import dev.torus.Device;

/** Base for tests that need a CUDA device: tagged "gpu" and skipped, with the cause, without one. */
@Tag("gpu")
public abstract class GpuTest extends TorusTestBase {
    @BeforeEach
    void requireCuda() {
        assumeTrue(Device.isCudaAvailable(), () -> "CUDA unavailable: " + Device.cudaUnavailableCause());
    }
}
