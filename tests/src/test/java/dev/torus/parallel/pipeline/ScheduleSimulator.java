package dev.torus.parallel.pipeline;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Runs every rank's action list of a schedule against a model of the transport that {@link PipelineStage}
 * uses, to find deadlocks without processes: receives block; a send completes only once its receiver has
 * posted the matching receive (Gloo's rendezvous), and the sends from one rank to one peer go out one at a
 * time in the order they were issued (one send lane per peer). Returns null when every rank finishes, or
 * a description of where each rank is stuck.
 */
final class ScheduleSimulator {
    private ScheduleSimulator() {}

    private record Msg(int mb, int boundary, boolean forward) {}

    static String deadlock(PipelineSchedule schedule, int p, int m) {
        int v = schedule.chunks();
        int vs = p * v;
        List<List<PipelineSchedule.Action>> acts = new ArrayList<>();
        for (int s = 0; s < p; s++) {
            acts.add(schedule.actions(s, p, m));
        }
        int[] at = new int[p];
        Map<Long, Deque<Msg>> lanes = new HashMap<>();   // src * p + dst -> issued, not yet received
        Set<Msg> waitingFor = new HashSet<>();
        boolean progress = true;
        while (progress) {
            progress = false;
            for (int s = 0; s < p; s++) {
                while (at[s] < acts.get(s).size()) {
                    PipelineSchedule.Action a = acts.get(s).get(at[s]);
                    int virt = a.chunk() * p + s;
                    Msg need = null;
                    int from = -1;
                    if (a.kind() == PipelineSchedule.Kind.F && virt > 0) {
                        need = new Msg(a.microBatch(), virt - 1, true);
                        from = (virt - 1) % p;
                    } else if (a.kind() == PipelineSchedule.Kind.B && virt < vs - 1) {
                        need = new Msg(a.microBatch(), virt, false);
                        from = (virt + 1) % p;
                    }
                    if (need != null) {
                        Deque<Msg> lane = lanes.get((long) from * p + s);
                        if (lane == null || lane.isEmpty() || !lane.peekFirst().equals(need)) {
                            break; // not issued yet, or queued behind a send this rank has not received
                        }
                        lane.pollFirst();
                    }
                    if (a.kind() == PipelineSchedule.Kind.F && virt < vs - 1) {
                        lanes.computeIfAbsent((long) s * p + (virt + 1) % p, k -> new ArrayDeque<>())
                                .add(new Msg(a.microBatch(), virt, true));
                    } else if (a.kind() == PipelineSchedule.Kind.B && virt > 0) {
                        lanes.computeIfAbsent((long) s * p + (virt - 1) % p, k -> new ArrayDeque<>())
                                .add(new Msg(a.microBatch(), virt - 1, false));
                    }
                    at[s]++;
                    progress = true;
                }
            }
        }
        StringBuilder stuck = new StringBuilder();
        for (int s = 0; s < p; s++) {
            if (at[s] < acts.get(s).size()) {
                stuck.append(" stage ").append(s).append(" at ").append(acts.get(s).get(at[s]));
            }
        }
        for (Map.Entry<Long, Deque<Msg>> e : lanes.entrySet()) {
            if (!e.getValue().isEmpty()) {
                stuck.append(" lane ").append(e.getKey() / p).append("->").append(e.getKey() % p).append(" holds ")
                        .append(e.getValue());
            }
        }
        return stuck.length() == 0 ? null : schedule + " p=" + p + " m=" + m + ":" + stuck;
    }
}
