package dev.torus.cli.launch;

import dev.torus.rendezvous.Store;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;

/**
 * How the agents of a multi-node job agree on the node count and their node ranks
 * for one attempt: each agent increments a counter (its value is the node rank),
 * waits until at least {@code min} nodes have joined, waits up to the last-call
 * period for more (up to {@code max}), and then the first agent to get there closes
 * the round with compare-and-set. An agent that joins after the round closed, or
 * beyond {@code max}, is refused with an error.
 */
final class NodeRendezvous {
    private NodeRendezvous() {}

    /** Returns {nodeRank, nodes}. */
    static int[] join(Store store, String runId, int attempt, int min, int max, Duration timeout, Duration lastCall,
                      PrintStream log) throws InterruptedException {
        String base = "runs/" + runId + "/agents/attempt-" + attempt;
        long joined = store.add(base + "/joined", 1);
        int nodeRank = (int) joined - 1;
        if (nodeRank >= max) {
            throw new IllegalStateException("run " + runId + " attempt " + attempt + " already has the maximum of " + max
                    + " nodes (--nnodes)");
        }
        log.println("torusrun: node " + nodeRank + " joined run " + runId + " attempt " + attempt + "; waiting for "
                + min + ".." + max + " nodes");
        long deadline = System.nanoTime() + timeout.toNanos();
        long count;
        while ((count = store.add(base + "/joined", 0)) < min) {
            if (store.tryGet(base + "/closed") != null) {
                break;
            }
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("rendezvous timed out after " + timeout.toSeconds() + " s: only " + count
                        + " of at least " + min + " nodes joined run " + runId + " (--rdzv-timeout)");
            }
            Thread.sleep(100);
        }
        long lastCallEnd = System.nanoTime() + lastCall.toNanos();
        while (store.tryGet(base + "/closed") == null && (count = store.add(base + "/joined", 0)) < max
                && System.nanoTime() < lastCallEnd) {
            Thread.sleep(100);
        }
        count = Math.min(max, store.add(base + "/joined", 0));
        byte[] closed = store.compareSet(base + "/closed", null, Long.toString(count).getBytes(StandardCharsets.UTF_8));
        int nodes = Integer.parseInt(new String(closed, StandardCharsets.UTF_8));
        if (nodeRank >= nodes) {
            throw new IllegalStateException("run " + runId + " attempt " + attempt + " closed with " + nodes
                    + " nodes before this node (" + nodeRank + ") could join");
        }
        log.println("torusrun: node " + nodeRank + " of " + nodes);
        return new int[] {nodeRank, nodes};
    }
}
