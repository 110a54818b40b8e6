package dev.torus.testing;

import dev.torus.tensor.Tensor;
import dev.torus.comm.Communicator;
import dev.torus.comm.ReduceOp;

/**
 * A worker for launcher tests, started by torusrun. Modes:
 * {@code env} prints its environment and the result of an all-reduce;
 * {@code crash R CODE} makes rank R write to stderr and exit with CODE while the others wait;
 * {@code sleep} prints READY and sleeps; {@code sleep-then-exit MS} prints READY, sleeps MS and exits 0;
 * {@code fail-once R CODE} fails like crash on the first attempt only, then behaves like env.
 */
public final class LauncherProbe {
    public static void main(String[] args) throws Exception {
        int rank = Integer.parseInt(System.getenv("RANK"));
        int restart = Integer.parseInt(System.getenv().getOrDefault("TORUS_RESTART_COUNT", "0"));
        switch (args[0]) {
            case "env" -> env(rank);
            case "crash" -> crash(rank, Integer.parseInt(args[1]), Integer.parseInt(args[2]));
            case "fail-once" -> {
                if (restart == 0) {
                    crash(rank, Integer.parseInt(args[1]), Integer.parseInt(args[2]));
                } else {
                    env(rank);
                }
            }
            case "sleep-then-exit" -> {
                System.out.println("READY " + ProcessHandle.current().pid());
                System.out.flush();
                Thread.sleep(Long.parseLong(args[1]));
                System.out.println("DONE");
            }
            case "sleep" -> {
                System.out.println("READY " + ProcessHandle.current().pid());
                System.out.flush();
                Thread.sleep(120_000);
            }
            default -> throw new IllegalArgumentException("unknown mode " + args[0]);
        }
    }

    static void env(int rank) {
        StringBuilder sb = new StringBuilder("ENV");
        for (String k : new String[] {"RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK",
                "TORUS_RDZV_ENDPOINT", "TORUS_RUN_ID", "TORUS_RESTART_COUNT"}) {
            sb.append(' ').append(k).append('=').append(System.getenv(k));
        }
        System.out.println(sb);
        try (Communicator c = Communicator.fromEnv();
             Tensor t = Tensor.fromArray(new float[] {rank + 1}, 1)) {
            c.allReduce(t, ReduceOp.SUM).await();
            System.out.println("SUM " + (int) t.toFloatArray()[0]);
        }
    }

    static void crash(int rank, int who, int code) throws InterruptedException {
        if (rank == who) {
            System.err.println("boom from rank " + rank);
            System.exit(code);
        }
        System.out.println("WAITING " + ProcessHandle.current().pid());
        System.out.flush();
        Thread.sleep(120_000);
    }
}
