package dev.torus.elastic;

import java.time.Duration;
import java.util.Map;

/**
 * How an elastic group forms and changes: its run id (members of one job share it),
 * the world size bounds, the failure-detection bound (a member whose heartbeat has not
 * changed for this long is dead), the collective and init timeouts of each
 * generation's communicator, and how long a job that fell below {@code minSize} waits for
 * replacements before it fails ({@code joinTimeout}). Validated on construction, naming the field.
 */
public record ElasticOptions(String runId, int minSize, int maxSize, Duration detectionBound, Duration opTimeout,
                            Duration initTimeout, Duration joinTimeout) {
    /** Environment variables {@link #fromEnv} reads (torusrun --elastic sets them). */
    public static final String MIN_ENV = "TORUS_ELASTIC_MIN";
    public static final String MAX_ENV = "TORUS_ELASTIC_MAX";
    public static final String JOIN_TIMEOUT_ENV = "TORUS_ELASTIC_JOIN_TIMEOUT_MS";
    public static final String DETECTION_ENV = "TORUS_ELASTIC_DETECTION_MS";

    /** With {@code joinTimeout} equal to {@code initTimeout}. */
    public ElasticOptions(String runId, int minSize, int maxSize, Duration detectionBound, Duration opTimeout,
                          Duration initTimeout) {
        this(runId, minSize, maxSize, detectionBound, opTimeout, initTimeout, initTimeout);
    }

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
        if (joinTimeout == null || joinTimeout.toMillis() < 1 || joinTimeout.toDays() > 7) {
            throw new IllegalArgumentException("joinTimeout must be between 1 ms and 7 days, got " + joinTimeout);
        }
    }

    /**
     * The options of a worker started by {@code torusrun --elastic}: TORUS_RUN_ID, {@value #MIN_ENV},
     * {@value #MAX_ENV}, and optionally {@value #JOIN_TIMEOUT_ENV} and {@value #DETECTION_ENV}
     * (milliseconds); 30 s collectives and init.
     *
     * @throws IllegalArgumentException naming the variable that is missing or malformed
     */
    public static ElasticOptions fromEnv(Map<String, String> env) {
        String run = env.get("TORUS_RUN_ID");
        if (run == null || run.isBlank()) {
            throw new IllegalArgumentException("environment variable TORUS_RUN_ID is not set: start the worker with "
                    + "torusrun --elastic");
        }
        Duration init = Duration.ofSeconds(30);
        return new ElasticOptions(run, envInt(env, MIN_ENV), envInt(env, MAX_ENV),
                Duration.ofMillis(envLong(env, DETECTION_ENV, 1000)), init, init,
                Duration.ofMillis(envLong(env, JOIN_TIMEOUT_ENV, init.toMillis())));
    }

    private static int envInt(Map<String, String> env, String name) {
        long v = envLong(env, name, -1);
        if (v < 1 || v > 1 << 20) {
            throw new IllegalArgumentException("environment variable " + name + " must be a world size in [1, "
                    + (1 << 20) + "], got " + v);
        }
        return (int) v;
    }

    private static long envLong(Map<String, String> env, String name, long dflt) {
        String v = env.get(name);
        if (v == null || v.isBlank()) {
            if (dflt < 0) {
                throw new IllegalArgumentException("environment variable " + name + " is not set: start the worker "
                        + "with torusrun --elastic");
            }
            return dflt;
        }
        long parsed;
        try {
            parsed = Long.parseLong(v.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("environment variable " + name + " must be an integer, got '" + v + "'");
        }
        if (parsed < 1) {
            throw new IllegalArgumentException("environment variable " + name + " must be positive, got " + parsed);
        }
        return parsed;
    }

    /** Defaults: failures detected within 1 s, 30 s collectives, 30 s init. */
    public static ElasticOptions of(String runId, int minSize, int maxSize) {
        return new ElasticOptions(runId, minSize, maxSize, Duration.ofSeconds(1), Duration.ofSeconds(30),
                Duration.ofSeconds(30), Duration.ofSeconds(30));
    }

    /** The heartbeat period: a fifth of the detection bound. */
    Duration heartbeatPeriod() {
        return detectionBound.dividedBy(5);
    }
}
