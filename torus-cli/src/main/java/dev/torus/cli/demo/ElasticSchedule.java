package dev.torus.cli.demo;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;

/**
 * The membership schedule of {@code ./torus demo --elastic}: a comma list of {@code start=N},
 * {@code join@STEP}, {@code leave@STEP[:RANK]} (SIGTERM, a graceful leave) and {@code kill@STEP[:RANK]}
 * (SIGKILL). An event fires once the job has completed STEP steps and every earlier event has taken
 * effect; a leave or kill without a rank takes the highest rank of the moment. Several events may
 * share a step; they fire in the order written.
 */
public record ElasticSchedule(int start, List<Event> events) {
    /** Two workers start, two join, one is killed, one leaves. */
    public static final String DEFAULT = "start=2,join@10,join@10,kill@70:1,leave@130";

    public enum Kind { JOIN, LEAVE, KILL }

    /** One change; {@code rank} is -1 for "the highest rank" (and always for a join). */
    public record Event(Kind kind, long step, int rank) {
        @Override
        public String toString() {
            return kind.name().toLowerCase(Locale.ROOT) + "@" + step + (rank >= 0 ? ":" + rank : "");
        }
    }

    public ElasticSchedule {
        events = List.copyOf(events);
    }

    /**
     * Parses and checks {@code spec} for a job of {@code totalSteps} steps and at most {@code maxWorld}
     * workers: every event's step must fall inside the run, the world must stay between 1 and
     * {@code maxWorld}, and a named rank must exist when its event fires.
     *
     * @throws IllegalArgumentException naming {@code --schedule} and the offending item
     */
    public static ElasticSchedule parse(String spec, long totalSteps, int maxWorld) {
        if (spec == null || spec.isBlank()) {
            throw new IllegalArgumentException("--schedule must not be empty; example: " + DEFAULT);
        }
        int start = -1;
        List<Event> events = new ArrayList<>();
        for (String raw : spec.split(",", -1)) {
            String item = raw.trim();
            if (item.isEmpty()) {
                throw new IllegalArgumentException("--schedule has an empty item in '" + spec + "'");
            }
            if (item.startsWith("start=")) {
                if (start >= 0) {
                    throw new IllegalArgumentException("--schedule gives start= twice in '" + spec + "'");
                }
                start = parseInt(item, item.substring("start=".length()), "a worker count");
                if (start < 1 || start > maxWorld) {
                    throw new IllegalArgumentException("--schedule item '" + item + "': start must be in [1, " + maxWorld
                            + "]");
                }
                continue;
            }
            int at = item.indexOf('@');
            if (at < 0) {
                throw new IllegalArgumentException("--schedule item '" + item + "' must be start=N, join@STEP, "
                        + "leave@STEP[:RANK] or kill@STEP[:RANK]");
            }
            Kind kind = switch (item.substring(0, at)) {
                case "join" -> Kind.JOIN;
                case "leave" -> Kind.LEAVE;
                case "kill" -> Kind.KILL;
                default -> throw new IllegalArgumentException("--schedule item '" + item + "': unknown event '"
                        + item.substring(0, at) + "' (expected join, leave or kill)");
            };
            String rest = item.substring(at + 1);
            int colon = rest.indexOf(':');
            int rank = -1;
            if (colon >= 0) {
                if (kind == Kind.JOIN) {
                    throw new IllegalArgumentException("--schedule item '" + item + "': a join takes no rank (the "
                            + "joiner gets the next free one)");
                }
                rank = parseInt(item, rest.substring(colon + 1), "a rank");
                if (rank < 0) {
                    throw new IllegalArgumentException("--schedule item '" + item + "': the rank must be >= 0");
                }
                rest = rest.substring(0, colon);
            }
            long step = parseInt(item, rest, "a step");
            if (step < 1 || step >= totalSteps) {
                throw new IllegalArgumentException("--schedule item '" + item + "': the step must be in [1, "
                        + (totalSteps - 1) + "] (the run has " + totalSteps + " steps)");
            }
            events.add(new Event(kind, step, rank));
        }
        if (start < 0) {
            start = 2;
        }
        events.sort(Comparator.comparingLong(Event::step)); // stable: same-step events keep their order
        ElasticSchedule s = new ElasticSchedule(start, events);
        // events of one step fire together: their ranks are those of the world when the step is reached
        int world = start;
        for (int i = 0; i < s.events.size(); ) {
            long step = s.events.get(i).step;
            int joins = 0;
            java.util.Set<Integer> taken = new java.util.HashSet<>();
            for (; i < s.events.size() && s.events.get(i).step == step; i++) {
                Event e = s.events.get(i);
                if (e.kind == Kind.JOIN) {
                    joins++;
                    continue;
                }
                if (e.rank >= world) {
                    throw new IllegalArgumentException("--schedule item '" + e + "': there will be only " + world
                            + " workers (ranks 0-" + (world - 1) + ") at step " + step);
                }
                int rank = e.rank;
                if (rank < 0) {
                    rank = world - 1;
                    while (taken.contains(rank)) {
                        rank--;
                    }
                }
                if (!taken.add(rank)) {
                    throw new IllegalArgumentException("--schedule item '" + e + "': rank " + rank + " is already "
                            + "stopped by another event of step " + step);
                }
                if (taken.size() >= world) {
                    throw new IllegalArgumentException("--schedule item '" + e + "' would leave no worker of the running "
                            + "job at step " + step + " (a joiner takes the state from the others)");
                }
            }
            world += joins - taken.size();
            if (world > maxWorld) {
                throw new IllegalArgumentException("--schedule at step " + step + " would make " + world
                        + " workers, more than the most the demo runs (" + maxWorld + ")");
            }
        }
        return s;
    }

    /** The world size the schedule plans just before event {@code index} (and after the last for {@code events().size()}). */
    public int plannedWorldBefore(int index) {
        int world = start;
        for (int i = 0; i < index; i++) {
            world += events.get(i).kind == Kind.JOIN ? 1 : -1;
        }
        return world;
    }

    /** The smallest and the largest world the schedule passes through. */
    public int[] worldRange() {
        int lo = start;
        int hi = start;
        for (int i = 1; i <= events.size(); i++) {
            int w = plannedWorldBefore(i);
            lo = Math.min(lo, w);
            hi = Math.max(hi, w);
        }
        return new int[] {lo, hi};
    }

    /** The schedule in its own syntax, events in firing order. */
    public String spec() {
        StringBuilder sb = new StringBuilder("start=").append(start);
        for (Event e : events) {
            sb.append(',').append(e);
        }
        return sb.toString();
    }

    private static int parseInt(String item, String text, String what) {
        try {
            return Integer.parseInt(text.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--schedule item '" + item + "': '" + text + "' is not " + what);
        }
    }
}
