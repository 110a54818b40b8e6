package dev.torus.parallel.pipeline;

import java.util.ArrayList;
import java.util.List;

/** Splits a model's segments into contiguous pipeline stages. */
public final class StagePartition {
    private StagePartition() {}

    /**
     * {@code stages} contiguous runs of {@code segments}, as equal in count as they can be (the first
     * ones take one more when the count does not divide).
     *
     * @throws IllegalArgumentException if there are more stages than segments
     */
    public static <T> List<List<T>> byCount(List<T> segments, int stages) {
        if (segments == null || segments.isEmpty()) {
            throw new IllegalArgumentException("segments must be a non-empty list");
        }
        if (stages < 1 || stages > segments.size()) {
            throw new IllegalArgumentException("stages must be in [1, " + segments.size() + "] (one segment at least per "
                    + "stage), got " + stages);
        }
        List<List<T>> out = new ArrayList<>();
        int base = segments.size() / stages;
        int extra = segments.size() % stages;
        int at = 0;
        for (int s = 0; s < stages; s++) {
            int n = base + (s < extra ? 1 : 0);
            out.add(List.copyOf(segments.subList(at, at + n)));
            at += n;
        }
        return out;
    }

    /** The index in the whole model of the first segment of each stage of {@link #byCount}. */
    public static int[] firstIndices(int segments, int stages) {
        int[] first = new int[stages];
        int base = segments / stages;
        int extra = segments % stages;
        for (int s = 1; s < stages; s++) {
            first[s] = first[s - 1] + base + (s - 1 < extra ? 1 : 0);
        }
        return first;
    }
}
