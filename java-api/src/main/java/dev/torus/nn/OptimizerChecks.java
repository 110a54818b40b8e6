package dev.torus.nn;

import java.util.List;

final class OptimizerChecks {
    private OptimizerChecks() {}

    static List<Parameter> params(List<Parameter> params) {
        if (params == null || params.isEmpty()) {
            throw new IllegalArgumentException("params must be a non-empty list");
        }
        for (int i = 0; i < params.size(); i++) {
            if (params.get(i) == null) {
                throw new IllegalArgumentException("params[" + i + "] must not be null");
            }
        }
        return List.copyOf(params);
    }

    static void lr(float lr) {
        if (!(lr >= 0f) || Float.isInfinite(lr)) {
            throw new IllegalArgumentException("lr must be a finite number >= 0, got " + lr);
        }
    }

    static void weightDecay(float wd) {
        if (!(wd >= 0f) || Float.isInfinite(wd)) {
            throw new IllegalArgumentException("weightDecay must be a finite number >= 0, got " + wd);
        }
    }
}
