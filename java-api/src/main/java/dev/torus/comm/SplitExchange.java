package dev.torus.comm;

import dev.torus.rendezvous.Store;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * The store exchange behind {@link Communicator#split}: every member of the parent
 * publishes its (color, key), waits for all the others, and the members that share
 * this rank's color are ordered by key, then by parent rank. The result is the
 * child's {@link CommSpec}; building the child from it is the backend's business
 * ({@link BaseCommunicator#joinSplit}).
 *
 * <p>Stateless: each call works on the keys of one split, numbered by the parent
 * ({@code split-<k>} under the parent's generation namespace), so concurrent splits
 * of different parents, or successive splits of one parent, never share keys. Every
 * store call is bounded by the parent's {@code initTimeout}.
 */
final class SplitExchange {
    private SplitExchange() {}

    /**
     * Publishes this rank's {@code color} and {@code key} for split number {@code k} of
     * {@code parent}, waits for every member's record, and returns the child's spec;
     * {@code null} for a negative color (the rank takes part but joins no child).
     */
    static CommSpec childSpec(CommSpec parent, int k, int color, int key) {
        // a signed record per rank, created once, like every rank record
        byte[][] all = Rendezvous.exchange(parent, "split-" + k,
                (color + "," + key).getBytes(StandardCharsets.US_ASCII));
        if (color < 0) {
            return null;
        }
        List<int[]> same = new ArrayList<>(); // {key, oldRank}
        for (int r = 0; r < parent.size(); r++) {
            byte[] v = all[r];
            String[] parts = new String(v, StandardCharsets.US_ASCII).split(",");
            if (parts.length != 2) {
                throw malformed(parent, r, k);
            }
            int c;
            int kk;
            try {
                c = Integer.parseInt(parts[0]);
                kk = Integer.parseInt(parts[1]);
            } catch (NumberFormatException e) {
                throw malformed(parent, r, k);
            }
            if (c == color) {
                same.add(new int[] {kk, r});
            }
        }
        same.sort((a, b) -> a[0] != b[0] ? Integer.compare(a[0], b[0]) : Integer.compare(a[1], b[1]));
        int[] ids = new int[same.size()];
        int newRank = -1;
        for (int i = 0; i < ids.length; i++) {
            ids[i] = parent.members()[same.get(i)[1]];
            if (same.get(i)[1] == parent.rank()) {
                newRank = i;
            }
        }
        // a child starts at generation 0 of its own name: the name carries the parent's generation (after
        // the first), so that the splits of a rebuilt parent never meet the records of an earlier one's
        String base = parent.generation() == 0 ? parent.name() : parent.name() + "/gen-" + parent.generation();
        return parent.child(base + "/split-" + k + "/color-" + color, newRank, ids);
    }

    private static CommException malformed(CommSpec parent, int r, int k) {
        return new CommException("malformed split record of rank " + r + " at split " + k + " of " + parent.name());
    }
}
