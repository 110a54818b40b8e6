package dev.torus.testing;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.TestInfo;

import dev.torus.Device;
import dev.torus.tensor.Tensor;
import dev.torus.memory.Allocator;

/**
 * Gives each test a root allocator and closes it afterwards, so every test is
 * also a leak check: an unclosed buffer fails the test with its name.
 */
public abstract class TorusTestBase {
    protected Allocator root;

    @BeforeEach
    void openRoot(TestInfo info) {
        root = Allocator.root(info.getDisplayName());
    }

    @AfterEach
    void closeRootChecksLeaks() {
        root.close();
    }

    /**
     * A copy of {@code host} on {@code device}; {@code host} is closed either way, so
     * {@code moved(Tensor.fromArray(...), d)} leaks nothing. The caller owns the copy.
     */
    protected static Tensor moved(Tensor host, Device device) {
        try (host) {
            return host.to(device);
        }
    }
}
