package dev.torus.testing;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.function.Executable;

/** Asserts that a call is refused with an {@link IllegalArgumentException} whose message names the argument. */
public final class BadArgument {
    private BadArgument() {}

    public static IllegalArgumentException assertMessage(String part, Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage() != null && e.getMessage().contains(part),
                "message '" + e.getMessage() + "' must mention " + part);
        return e;
    }
}
