package dev.torus.elastic;

import java.util.List;

/**
 * What one rebuild did: the generations and world sizes before and after, the member
 * ids that joined and left, whether it followed a failure (the survivors must roll back
 * to their last commit), and how long detection and the rebuild took.
 */
public record MembershipChange(long generationBefore, long generationAfter, int worldBefore, int worldAfter,
                               List<Long> joined, List<Long> left, boolean failure, long detectionMillis,
                               long rebuildMillis) {
    public MembershipChange {
        joined = List.copyOf(joined);
        left = List.copyOf(left);
    }

    /** Joiners need the committed state: the group must sync it (and survivors of a failure restore it first). */
    public boolean needsStateSync() {
        return failure || !joined.isEmpty();
    }
}
