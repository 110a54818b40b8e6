package dev.torus.cli.bench;

import dev.torus.comm.Communicator;
import dev.torus.comm.CommunicatorBuilder;
import dev.torus.zookeeper.EmbeddedZooKeeper;
import dev.torus.rendezvous.JobSecret;
import java.io.PrintStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

/**
 * What authentication costs the forming of a world, the work {@code Communicator.fromEnv()}
 * does: each rank opens its own store connection (with the job's digest credential, or
 * none), claims the generation, publishes its record (signed, or not), checks the
 * others' and connects Gloo. Open and authenticated rounds alternate against two
 * embedded servers in this JVM, and the row reports the median of each and their ratio:
 * first with ranks as threads of this JVM (warm), then as fresh worker processes that
 * time {@code fromEnv()} itself (cold: class loading and crypto setup included).
 */
public final class RendezvousBench {
    private final PrintStream out;
    private final int rounds;
    private final int coldRounds;

    public RendezvousBench(PrintStream out, int rounds, int coldRounds) {
        this.out = out;
        this.rounds = rounds;
        this.coldRounds = coldRounds;
    }

    public List<BenchRow> run(List<Integer> worlds, Path json) throws Exception {
        List<BenchRow> rows = new ArrayList<>();
        ExecutorService pool = Executors.newCachedThreadPool();
        try (EmbeddedZooKeeper open = EmbeddedZooKeeper.startWithoutAuth();
             EmbeddedZooKeeper secured = EmbeddedZooKeeper.start();
             BenchReport report = new BenchReport(out, json, new String[] {"mode", "ranks", "open_ms", "auth_ms",
                     "auth/open", "open_p90_ms", "auth_p90_ms"}, new int[] {8, 6, 10, 10, 10, 12, 12})) {
            report.header("# forming a world (store connection, rendezvous, Gloo connect) per rank, open vs "
                    + "authenticated (digest credential, job ACLs, signed records); median of " + rounds + " rounds each");
            for (int n : worlds) {
                // one warm-up round of each, not counted
                form(pool, open.connectString(), n, null, "warm-open-" + n);
                form(pool, secured.connectString(), n, JobSecret.generate(), "warm-auth-" + n);
                double[] o = new double[rounds];
                double[] a = new double[rounds];
                for (int i = 0; i < rounds; i++) {
                    o[i] = form(pool, open.connectString(), n, null, "open-" + n + "-" + i);
                    a[i] = form(pool, secured.connectString(), n, JobSecret.generate(), "auth-" + n + "-" + i);
                }
                BenchRow row = new BenchRow().put("bench", "rendezvous").put("mode", "warm").put("ranks", n)
                        .put("open_ms", median(o)).put("auth_ms", median(a)).put("auth/open", median(a) / median(o))
                        .put("open_p90_ms", quantile(o, 0.9)).put("auth_p90_ms", quantile(a, 0.9));
                report.add(row);
                rows.add(row);
            }
            for (int n : worlds) {
                double[] o = new double[coldRounds];
                double[] a = new double[coldRounds];
                for (int i = 0; i < coldRounds; i++) {
                    o[i] = cold(open.connectString(), n, null, "cold-open-" + n + "-" + i);
                    a[i] = cold(secured.connectString(), n, JobSecret.generate(), "cold-auth-" + n + "-" + i);
                }
                BenchRow row = new BenchRow().put("bench", "rendezvous").put("mode", "cold").put("ranks", n)
                        .put("open_ms", median(o)).put("auth_ms", median(a)).put("auth/open", median(a) / median(o))
                        .put("open_p90_ms", quantile(o, 0.9)).put("auth_p90_ms", quantile(a, 0.9));
                report.add(row);
                rows.add(row);
            }
        } finally {
            pool.shutdownNow();
            pool.awaitTermination(10, TimeUnit.SECONDS);
        }
        return rows;
    }

    /** Milliseconds until the slowest of {@code n} ranks has its communicator (each builds its own connection). */
    private static double form(ExecutorService pool, String endpoint, int n, JobSecret secret, String run)
            throws Exception {
        long t0 = System.nanoTime();
        List<Future<Communicator>> fs = new ArrayList<>();
        for (int r = 0; r < n; r++) {
            int rank = r;
            fs.add(pool.submit(() -> {
                CommunicatorBuilder b = Communicator.builder().rank(rank).size(n).endpoint(endpoint).runId(run)
                        .initTimeout(Duration.ofSeconds(60));
                if (secret != null) {
                    b.jobSecret(secret);
                }
                return b.build();
            }));
        }
        List<Communicator> comms = new ArrayList<>();
        for (Future<Communicator> f : fs) {
            comms.add(f.get(120, TimeUnit.SECONDS));
        }
        double ms = (System.nanoTime() - t0) / 1e6;
        for (Communicator c : comms) {
            c.close();
        }
        return ms;
    }

    /**
     * The slowest rank's {@code Communicator.fromEnv()} time, each rank a fresh JVM with the
     * environment torusrun would give it (the secret only in the environment).
     */
    private static double cold(String endpoint, int n, JobSecret secret, String run) throws Exception {
        List<Process> ps = new ArrayList<>();
        try {
            for (int r = 0; r < n; r++) {
                ProcessBuilder pb = new ProcessBuilder(java.nio.file.Path.of(System.getProperty("java.home"), "bin", "java")
                        .toString(), "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp",
                        System.getProperty("java.class.path"), RendezvousBenchWorker.class.getName());
                pb.environment().remove(JobSecret.ENV);
                pb.environment().put("RANK", Integer.toString(r));
                pb.environment().put("WORLD_SIZE", Integer.toString(n));
                pb.environment().put("TORUS_RDZV_ENDPOINT", endpoint);
                pb.environment().put("TORUS_RUN_ID", run);
                if (secret != null) {
                    pb.environment().put(JobSecret.ENV, secret.toHex());
                }
                pb.redirectErrorStream(true);
                ps.add(pb.start());
            }
            double worst = 0;
            for (Process p : ps) {
                String output = new String(p.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
                if (!p.waitFor(120, TimeUnit.SECONDS) || p.exitValue() != 0) {
                    throw new IllegalStateException("a rendezvous benchmark worker failed:\n" + output);
                }
                double ms = output.lines().filter(l -> l.startsWith("FROMENV_MS ")).mapToDouble(
                        l -> Double.parseDouble(l.substring("FROMENV_MS ".length()))).findFirst()
                        .orElseThrow(() -> new IllegalStateException("no FROMENV_MS line in:\n" + output));
                worst = Math.max(worst, ms);
            }
            return worst;
        } finally {
            for (Process p : ps) {
                p.destroyForcibly();
            }
        }
    }

    private static double median(double[] v) {
        return quantile(v, 0.5);
    }

    private static double quantile(double[] v, double q) {
        double[] s = v.clone();
        Arrays.sort(s);
        return s[(int) Math.min(s.length - 1, Math.round(q * (s.length - 1)))];
    }
}
