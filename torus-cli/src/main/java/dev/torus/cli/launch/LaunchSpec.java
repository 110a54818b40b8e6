package dev.torus.cli.launch;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;

/**
 * What {@link Launcher} starts: {@code nprocPerNode} workers on this node, each running
 * {@code command}, in a job of {@code minNodes..maxNodes} nodes that meet at
 * {@code endpoint} (a ZooKeeper connect string; null starts an embedded server, which
 * allows one node only). {@code runId} names the job (null: a fresh one);
 * {@code maxRestarts} is how often the whole job is restarted after a failure;
 * {@code errorDir} null means the private per-user directory {@code <tmp>/torusrun-<user>}.
 * Validated by the constructor, with the option names of the {@code torusrun} command.
 */
public record LaunchSpec(int nprocPerNode, int minNodes, int maxNodes, String endpoint, String runId, int maxRestarts,
                         List<String> command, Map<String, String> extraEnv, Path errorDir, Duration rdzvTimeout,
                         Duration lastCall) {
    public LaunchSpec {
        if (nprocPerNode < 1) {
            throw new IllegalArgumentException("--nproc-per-node must be >= 1, got " + nprocPerNode);
        }
        if (minNodes < 1 || maxNodes < minNodes) {
            throw new IllegalArgumentException("--nnodes must be N or MIN:MAX with 1 <= MIN <= MAX, got " + minNodes + ":"
                    + maxNodes);
        }
        if (maxNodes > 1 && endpoint == null) {
            throw new IllegalArgumentException("--rdzv-endpoint must name a ZooKeeper ensemble that every node can reach "
                    + "when --nnodes allows more than one node (the embedded server serves one node)");
        }
        if (maxNodes > 1 && runId == null) {
            throw new IllegalArgumentException("--run-id is required when --nnodes allows more than one node: every node "
                    + "must pass the same one");
        }
        if (runId != null && (!runId.matches("[A-Za-z0-9._-]{1,80}") || runId.equals(".") || runId.equals(".."))) {
            throw new IllegalArgumentException("--run-id must be 1-80 characters of [A-Za-z0-9._-], got '" + runId + "'");
        }
        if (maxRestarts < 0) {
            throw new IllegalArgumentException("--max-restarts must be >= 0, got " + maxRestarts);
        }
        if (command == null || command.isEmpty()) {
            throw new IllegalArgumentException("a worker command (a main class, a .jar, or a program with --exec) is required");
        }
        if (rdzvTimeout == null || rdzvTimeout.isNegative() || rdzvTimeout.isZero()) {
            throw new IllegalArgumentException("--rdzv-timeout must be positive, got " + rdzvTimeout);
        }
        if (lastCall == null || lastCall.isNegative()) {
            throw new IllegalArgumentException("--rdzv-last-call must be >= 0, got " + lastCall);
        }
        command = List.copyOf(command);
        extraEnv = Map.copyOf(extraEnv == null ? Map.of() : extraEnv);
    }

    /** "N" or "MIN:MAX" into {min, max}; {@code argName} names the option in errors. */
    public static int[] parseNodes(String argName, String text) {
        try {
            String[] parts = text.trim().split(":", -1);
            if (parts.length == 1) {
                int n = Integer.parseInt(parts[0]);
                return new int[] {n, n};
            }
            if (parts.length == 2) {
                return new int[] {Integer.parseInt(parts[0]), Integer.parseInt(parts[1])};
            }
        } catch (NumberFormatException | NullPointerException e) {
            // fall through
        }
        throw new IllegalArgumentException(argName + " must be N or MIN:MAX (e.g. 1:4), got '" + text + "'");
    }
}
