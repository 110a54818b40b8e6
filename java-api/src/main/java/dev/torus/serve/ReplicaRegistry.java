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
    /**
     * One registered replica: its id, its {@code http://host:port} endpoint, its process id, and the digest of
     * the model file it loaded ({@link ModelDigest}), so that a router never adopts a replica of another version
     * of the model.
     */
    record Entry(String id, String endpoint, long pid, String model) {
        public Entry {
            if (id == null || !id.matches("[A-Za-z0-9_.-]{1,64}")) {
                throw new IllegalArgumentException("replica id must be 1-64 characters of [A-Za-z0-9_.-], got '" + id + "'");
            }
            java.net.URI uri;
            try {
                uri = endpoint == null ? null : new java.net.URI(endpoint);
            } catch (java.net.URISyntaxException e) {
                uri = null;
            }
            if (uri == null || !"http".equals(uri.getScheme()) || uri.getHost() == null || uri.getPort() < 1
                    || !(uri.getPath() == null || uri.getPath().isEmpty()) || uri.getQuery() != null) {
                throw new IllegalArgumentException("endpoint must be http://host:port, got '" + endpoint + "'");
            }
            if (model == null || !model.matches("[0-9a-f]{16,64}")) {
                throw new IllegalArgumentException("model must be a hex digest of 16-64 characters, got '" + model + "'");
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
