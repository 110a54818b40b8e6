package dev.torus.zookeeper;

import dev.torus.rendezvous.JobSecret;
import dev.torus.rendezvous.Store;
import dev.torus.rendezvous.StoreProvider;
import java.time.Duration;
import java.util.regex.Pattern;

/**
 * Opens a {@link ZooKeeperStore} for a ZooKeeper connect string ({@code host:port[,host:port...]},
 * with an optional chroot). Registered for {@link java.util.ServiceLoader}, so that
 * {@code Communicator.fromEnv()} finds it without naming it.
 */
public final class ZooKeeperStoreProvider implements StoreProvider {

    // host:port pairs, comma-separated, optionally followed by a /chroot; a bracketed IPv6 host allowed
    private static final Pattern CONNECT_STRING =
            Pattern.compile("(\\[[0-9A-Fa-f:.]+]|[A-Za-z0-9._-]+)(:\\d{1,5})?(,(\\[[0-9A-Fa-f:.]+]|[A-Za-z0-9._-]+)(:\\d{1,5})?)*(/\\S*)?");

    @Override
    public String name() {
        return "zookeeper";
    }

    @Override
    public boolean accepts(String endpoint) {
        return endpoint != null && CONNECT_STRING.matcher(endpoint).matches();
    }

    @Override
    public Store open(String endpoint, String root, Duration connectTimeout, JobSecret secret) {
        ZooKeeperStore.Builder b = ZooKeeperStore.builder(endpoint).root(root).connectTimeout(connectTimeout);
        if (secret != null) {
            b.jobSecret(secret);
        }
        return b.build();
    }
}
