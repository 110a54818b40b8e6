package dev.torus.comm;

import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One daemon thread per JVM that scans the operations running on every open
 * communicator every {@link #PERIOD_MS}. It aborts a communicator whose operation has
 * outlived its timeout by 500 ms (the native call should have failed by itself), and
 * asks a stalled collective to probe for a mismatch ({@link FailureDiagnosis#probe}).
 * Scanning, rather than scheduling a timer per operation, keeps the per-operation cost
 * to two set updates. The thread never calls the store itself.
 */
final class Watchdog {
    private static final Logger LOG = LoggerFactory.getLogger(Watchdog.class);
    static final long PERIOD_MS = 100;
    /** Grace past an operation's timeout before the watchdog aborts its communicator. */
    static final long OVERDUE_GRACE_MS = 500;

    /** What the watchdog asks of a communicator. */
    interface Watched {
        Set<Running> running();

        void overdue(Running r);

        void stalled(Running r);
    }

    private static final Set<Watched> LIVE = ConcurrentHashMap.newKeySet();

    static {
        Thread dog = new Thread(Watchdog::loop, "torus-comm-watchdog");
        dog.setDaemon(true);
        dog.start();
    }

    private Watchdog() {}

    static void watch(Watched c) {
        LIVE.add(c);
    }

    static void unwatch(Watched c) {
        LIVE.remove(c);
    }

    /**
     * An operation executing on a lane. {@code fingerprint} is null for point-to-point
     * operations, which are not probed. The probe schedule starts at {@code probeAfterMs}
     * and backs off to once every 2 s.
     */
    static final class Running {
        final String desc;
        final long seq;
        final Fingerprint fingerprint;
        final long timeoutMs;
        final long deadlineNanos;
        final AtomicBoolean probing = new AtomicBoolean();
        /** Set once the watchdog has asked for this op's communicator to be aborted. */
        final AtomicBoolean overdueReported = new AtomicBoolean();
        /** Set once a probe has posted this op's report to the store. */
        volatile boolean posted;
        private volatile long nextProbeNanos;
        private long probeIntervalMs;

        Running(String desc, long seq, Fingerprint fingerprint, long timeoutMs, long probeAfterMs) {
            long now = System.nanoTime();
            this.desc = desc;
            this.seq = seq;
            this.fingerprint = fingerprint;
            this.timeoutMs = timeoutMs;
            this.deadlineNanos = now + (timeoutMs + OVERDUE_GRACE_MS) * 1_000_000L;
            this.nextProbeNanos = now + probeAfterMs * 1_000_000L;
            this.probeIntervalMs = PERIOD_MS;
        }

        /** Schedules the next probe after this one, doubling the interval up to 2 s. */
        void probeDone() {
            probeIntervalMs = Math.min(2_000, probeIntervalMs * 2);
            nextProbeNanos = System.nanoTime() + probeIntervalMs * 1_000_000L;
            probing.set(false);
        }
    }

    private static void loop() {
        while (true) {
            try {
                Thread.sleep(PERIOD_MS);
                long now = System.nanoTime();
                for (Watched c : LIVE) {
                    for (Running r : c.running()) {
                        if (now - r.deadlineNanos > 0) {
                            c.overdue(r);
                        } else if (r.fingerprint != null && now - r.nextProbeNanos > 0
                                && r.probing.compareAndSet(false, true)) {
                            c.stalled(r);
                        }
                    }
                }
            } catch (InterruptedException e) {
                return;
            } catch (RuntimeException e) {
                LOG.warn("comm watchdog: {}", e.toString());
            }
        }
    }
}
