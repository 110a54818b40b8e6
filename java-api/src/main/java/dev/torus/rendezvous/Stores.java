package dev.torus.rendezvous;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
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
        Objects.requireNonNull(endpoint, "endpoint");
        List<String> seen = new ArrayList<>();
        for (StoreProvider p : ServiceLoader.load(StoreProvider.class, Stores.class.getClassLoader())) {
            if (p.accepts(endpoint)) {
                return p.open(endpoint, root, connectTimeout, secret);
            }
            seen.add(p.name());
        }
        if (seen.isEmpty()) {
            throw new IllegalArgumentException("endpoint '" + endpoint + "': no store provider is installed; "
                    + "add the torus-zookeeper artifact to the class path");
        }
        throw new IllegalArgumentException("endpoint '" + endpoint + "': no installed store provider accepts it "
                + "(installed: " + String.join(", ", seen) + ")");
    }
}
