package dev.torus.cli.bench;

import java.util.ArrayList;
import java.util.List;

/**
 * Where benchmark ranks run: this host (the default, {@link #LOCAL}), or the test hosts
 * that {@code tools/netns-cluster.sh} made (network namespaces {@code prefix-0..hosts-1} at
 * 10.201.0.1..hosts on a bridge at 10.201.0.254). Rank r runs on host r mod hosts.
 */
public record TestHosts(String prefix, int hosts) {
    public static final TestHosts LOCAL = new TestHosts(null, 0);
    public static final String BRIDGE = "10.201.0.254";

    public boolean local() {
        return prefix == null;
    }

    /** The command of rank r, prefixed with {@code ip netns exec} for a test host. */
    public List<String> command(int rank, List<String> cmd) {
        if (local()) {
            return cmd;
        }
        List<String> c = new ArrayList<>(List.of("ip", "netns", "exec", prefix + "-" + (rank % hosts)));
        c.addAll(cmd);
        return c;
    }

    /** The address rank r listens on. */
    public String address(int rank) {
        return local() ? "127.0.0.1" : "10.201.0." + (rank % hosts + 1);
    }

    /** The address ZooKeeper binds to, reachable from every host. */
    public String zooKeeperAddress() {
        return local() ? "127.0.0.1" : BRIDGE;
    }
}
