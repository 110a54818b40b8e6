package dev.torus.rendezvous;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.ServiceLoader;

/** Opens stores through the {@link StoreProvider}s that are installed. */
public final class Stores {

    private Stores() {}

    /**
     * Opens a store at {@code endpoint} with the first installed provider that accepts it. The
     * caller owns the store.
     *
     * @throws IllegalArgumentException if no installed provider accepts the endpoint, naming the
     *     providers found (none means the {@code torus-zookeeper} artifact is missing)
     */
    public static Store open(String endpoint, String root, Duration connectTimeout, JobSecret secret) {
        if (endpoint == null || endpoint.isBlank()) {
            throw new IllegalArgumentException("endpoint must be a store address such as host:2181, got '" + endpoint + "'");
        }
        List<String> seen = new ArrayList<>();
        // this library's loader first, then the caller's context loader (an application server may keep
        // the provider in a child loader of the one that holds Torus)
        List<ClassLoader> loaders = new ArrayList<>();
        loaders.add(Stores.class.getClassLoader());
        ClassLoader context = Thread.currentThread().getContextClassLoader();
        if (context != null && context != loaders.get(0)) {
            loaders.add(context);
        }
        for (ClassLoader loader : loaders) {
            for (StoreProvider p : ServiceLoader.load(StoreProvider.class, loader)) {
                if (p.accepts(endpoint)) {
                    return p.open(endpoint, root, connectTimeout, secret);
                }
                if (!seen.contains(p.name())) {
                    seen.add(p.name());
                }
            }
        }
        if (seen.isEmpty()) {
            throw new IllegalArgumentException("endpoint '" + endpoint + "': no store provider is installed; "
                    + "add the torus-zookeeper artifact to the class path");
        }
        throw new IllegalArgumentException("endpoint '" + endpoint + "': no installed store provider accepts it "
                + "(installed: " + String.join(", ", seen) + "); a ZooKeeper endpoint is host:port[,host:port...][/chroot]");
    }
}
