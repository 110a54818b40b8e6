package dev.torus.elastic;

import java.time.Duration;

/**
 * How an elastic group forms and changes: its run id (members of one job share it),
 * the world size bounds, the failure-detection bound (a member whose heartbeat has not
 * changed for this long is dead), and the collective and init timeouts of each
 * generation's communicator. Validated on construction, naming the field.
 */
public record ElasticOptions(String runId, int minSize, int maxSize, Duration detectionBound, Duration opTimeout,
                             Duration initTimeout) {
    public ElasticOptions {
        if (runId == null || !runId.matches("[A-Za-z0-9._-]{1,80}")) {
            throw new IllegalArgumentException("runId must be 1-80 characters of [A-Za-z0-9._-], got '" + runId + "'");
        }
        if (minSize < 1 || maxSize < minSize) {
            throw new IllegalArgumentException("minSize and maxSize must satisfy 1 <= minSize <= maxSize, got " + minSize
                    + " and " + maxSize);
        }
        if (detectionBound == null || detectionBound.toMillis() < 200 || detectionBound.toSeconds() > 600) {
            throw new IllegalArgumentException("detectionBound must be between 200 ms and 600 s, got " + detectionBound);
        }
        if (opTimeout == null || opTimeout.isNegative() || opTimeout.isZero()) {
            throw new IllegalArgumentException("opTimeout must be positive, got " + opTimeout);
        }
        if (initTimeout == null || initTimeout.isNegative() || initTimeout.isZero()) {
            throw new IllegalArgumentException("initTimeout must be positive, got " + initTimeout);
        }
    }

    /** Defaults: failures detected within 1 s, 30 s collectives, 30 s init. */
    public static ElasticOptions of(String runId, int minSize, int maxSize) {
        return new ElasticOptions(runId, minSize, maxSize, Duration.ofSeconds(1), Duration.ofSeconds(30),
                Duration.ofSeconds(30));
    }

    /** The heartbeat period: a fifth of the detection bound. */
    Duration heartbeatPeriod() {
        return detectionBound.dividedBy(5);
    }
}
