package dev.torus.serve;

import java.util.List;
import java.util.function.Consumer;

/**
 * Service discovery for replicas: a replica registers once it is ready, and routers (on any node) watch
 * the registered set. Registrations are ephemeral: a replica that dies drops out when its session ends,
 * and a registration lost with its session (for example when the registry restarts) is made again.
 * The ZooKeeper implementation lives in module torus-zookeeper. Whoever opens a registry closes it.
 */
public interface ReplicaRegistry extends AutoCloseable {
    /** One registered replica: its id, its {@code http://host:port} endpoint and its process id. */
    record Entry(String id, String endpoint, long pid) {
        public Entry {
            if (id == null || !id.matches("[A-Za-z0-9_.-]{1,64}")) {
                throw new IllegalArgumentException("replica id must be 1-64 characters of [A-Za-z0-9_.-], got '" + id + "'");
            }
            if (endpoint == null || !endpoint.startsWith("http://")) {
                throw new IllegalArgumentException("endpoint must start with http://, got '" + endpoint + "'");
            }
        }
    }

    /** Registers a ready replica; closing the result deregisters it. */
    AutoCloseable register(Entry entry);

    /**
     * Calls {@code onChange} with the full registered set now and after every change (from a registry
     * thread). Closing the result stops the calls.
     */
    AutoCloseable watch(Consumer<List<Entry>> onChange);

    /** Asks replica {@code id} to drain and exit (it sees it through {@link #stopRequested}). */
    void requestStop(String id);

    /** Whether a stop was requested for {@code id}. */
    boolean stopRequested(String id);

    @Override
    void close();
}
