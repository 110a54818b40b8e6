package dev.torus.comm;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;

/**
 * Which ranks share a host, for the shared-memory transport. Two processes share a host
 * when they could map the same POSIX shared-memory segment and see each other's pids: the
 * same kernel boot, the same /dev/shm file system (device and inode) and the same pid
 * namespace. The
 * network namespace is part of the id too, so that ranks in separate network namespaces
 * of one machine (the multi-host tests) count as separate hosts, as their traffic would.
 * {@code TORUS_HOST_ID} replaces all of it.
 */
public final class HostIdentity {
    private HostIdentity() {}

    /** This process's host id, as text. */
    public static String current() {
        String forced = System.getenv("TORUS_HOST_ID");
        if (forced != null && !forced.isBlank()) {
            return "forced:" + forced.trim();
        }
        StringBuilder id = new StringBuilder();
        try {
            id.append(Files.readString(Path.of("/proc/sys/kernel/random/boot_id")).trim());
            // the shared-memory file system itself, not the mount namespace: `ip netns exec` gives
            // every process a mount namespace of its own, with the same /dev/shm
            Path shm = Path.of("/dev/shm");
            id.append("/shm:").append(Files.getAttribute(shm, "unix:dev")).append(':')
                    .append(Files.getAttribute(shm, "unix:ino"));
            for (String ns : new String[] {"pid", "net"}) {
                id.append('/').append(Files.readSymbolicLink(Path.of("/proc/self/ns/" + ns)));
            }
        } catch (IOException | UnsupportedOperationException | IllegalArgumentException | SecurityException e) {
            // unknown: never equal to another process's id, so shared memory is not used
            return "unknown-" + ProcessHandle.current().pid() + "-" + System.nanoTime();
        }
        return id.toString();
    }

    /** 32 bytes that stand for {@link #current()} in a rank's address record. */
    static byte[] digest() {
        try {
            return MessageDigest.getInstance("SHA-256").digest(current().getBytes(StandardCharsets.UTF_8));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is missing from this JVM", e);
        }
    }
}
