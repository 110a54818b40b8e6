package dev.torus.testing;

import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;

import dev.torus.Device;

/**
 * Base for tests that need a CUDA device: tagged "gpu" and skipped, with the cause,
 * without one. With {@code -Dtorus.requireGpu=true} (the GPU host's run script sets
 * it) a missing device fails the test instead, so a GPU run cannot pass by skipping.
 */
@Tag("gpu")
public abstract class GpuTest extends TorusTestBase {
    /** System property that turns "no CUDA device" from a skip into a failure. */
    public static final String PROP_REQUIRE_GPU = "torus.requireGpu";

    @BeforeEach
    void cudaOrSkip() {
        requireCuda();
    }

    /**
     * Skips the calling test when no CUDA device is usable, naming the cause; fails it
     * instead when {@value #PROP_REQUIRE_GPU} is true. For gpu-tagged tests that cannot
     * extend this class.
     */
    public static void requireCuda() {
        if (Device.isCudaAvailable()) {
            return;
        }
        String why = "CUDA unavailable: " + Device.cudaUnavailableCause();
        if (Boolean.getBoolean(PROP_REQUIRE_GPU)) {
            fail(why + " (-D" + PROP_REQUIRE_GPU + "=true makes this a failure)");
        }
        assumeTrue(false, why);
    }
}
