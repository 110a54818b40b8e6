package dev.torus.rendezvous;

import java.time.Duration;

/**
 * Opens a {@link Store} from an endpoint string: how {@link dev.torus.comm.Communicator#fromEnv()}
 * and {@code CommunicatorBuilder.endpoint(...)} reach a store without naming its implementation.
 *
 * <p>Implementations are found with {@link java.util.ServiceLoader}, on the class path or the module
 * path. The {@code torus-zookeeper} artifact provides one for {@code host:port[,host:port...]}
 * endpoints. The caller of {@link #open} owns the returned store and closes it.
 */
public interface StoreProvider {

    /** A short name for error messages, such as {@code zookeeper}. */
    String name();

    /** Whether this provider understands {@code endpoint}; nothing is connected to answer it. */
    boolean accepts(String endpoint);

    /**
     * Connects to {@code endpoint} within {@code connectTimeout} and returns a store whose keys live
     * under {@code root}. When {@code secret} is not null the store authenticates with it and keeps
     * what it writes readable by the job only.
     *
     * @throws StoreException if the store cannot be reached in time or refuses the credential
     */
    Store open(String endpoint, String root, Duration connectTimeout, JobSecret secret);
}
