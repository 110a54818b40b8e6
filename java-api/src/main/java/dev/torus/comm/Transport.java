package dev.torus.comm;

import java.util.Locale;

/**
 * How a Gloo communicator moves data between ranks that share a host.
 *
 * <ul>
 *   <li>{@link #AUTO} (the default): a shared-memory segment for the ranks of one host
 *       when it can be set up, else Gloo's TCP transport for everything; the choice is
 *       made once per generation, the same on every rank.</li>
 *   <li>{@link #SHM}: the shared-memory transport, or an error at creation that names the
 *       cause.</li>
 *   <li>{@link #GLOO}: Gloo's TCP transport for every collective, as before.</li>
 * </ul>
 *
 * With ranks on several hosts, shared memory carries the part inside each host and Gloo
 * the part between hosts (docs/COLLECTIVES.md, "Shared-memory transport"). Ranks share a
 * host when their host ids ({@link HostIdentity}) are equal. The NCCL backend ignores this.
 */
public enum Transport {
    AUTO, SHM, GLOO;

    /** Parses {@code auto}, {@code shm} or {@code gloo} (any case) for {@code argName}. */
    public static Transport parse(String argName, String value) {
        if (value != null) {
            for (Transport t : values()) {
                if (t.name().equals(value.trim().toUpperCase(Locale.ROOT))) {
                    return t;
                }
            }
        }
        throw new IllegalArgumentException(argName + " must be auto, shm or gloo, got '" + value + "'");
    }
}
