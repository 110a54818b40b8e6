package dev.torus.cli.demo;

import dev.torus.cli.Json;
import dev.torus.cli.launch.Launcher;
import dev.torus.cli.launch.LauncherLink;
import dev.torus.rendezvous.JobSecret;
import dev.torus.zookeeper.EmbeddedZooKeeper;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * The driver of {@code ./torus demo --elastic}: starts an embedded ZooKeeper (with a job secret)
 * and the schedule's first workers, starts, stops (SIGTERM) and kills (SIGKILL) worker processes as
 * the job reaches each event's step, shows progress with the world size, then replays the surviving
 * history in one process and compares the parameters bit for bit. Writes {@code loss.png} (loss
 * and world size against the step) and {@code summary.json} with an {@code elastic} object. Owns
 * every process it starts and kills what is left of them on the way out.
 */
public final class ElasticDemoRun {
    /** The most workers the demo runs at once. */
    public static final int MAX_WORLD = 8;
    private static final long EVENT_WAIT_MILLIS = 120_000;
    private static final long RUN_LIMIT_MILLIS = 20 * 60_000;
    private static final long REPLAY_LIMIT_SECONDS = 600;
    private static final Pattern EVENT_FIELD = Pattern.compile("\"([a-z_]+)\":(-?\\d+|\"[a-z+]*\")");

    private final DemoOptions options;
    private final ElasticSchedule schedule;
    private final int microBatch;
    private final int commitEvery;
    private final int stepPauseMs;
    private final int[] adaptive; // {min, max} global batch, or null for a fixed batch
    private final Path outDir;
    private final double targetAccuracy;
    private final boolean skipReplay;
    private final PrintStream out;
    private final PrintStream err;
    private final List<Worker> workers = new ArrayList<>();
    private final LinkedBlockingQueue<Line> lines = new LinkedBlockingQueue<>();
    private final Map<Integer, String> finalHashes = new TreeMap<>(); // worker index -> "step hash"

    /** A worker process and what its progress lines said last. */
    private static final class Worker {
        final int index;
        final Process process;
        int rank = -1;
        long generation = -1;
        boolean member;        // it completed a step: it was admitted
        String fate = "running"; // "left", "killed" once the driver signalled it

        Worker(int index, Process process) {
            this.index = index;
            this.process = process;
        }
    }

    private record Line(Worker worker, boolean stderr, String text) {}

    /** A membership change the driver saw: the first progress line of a new generation. */
    private record Change(long step, long generation, int worldBefore, int worldAfter) {}

    public ElasticDemoRun(DemoOptions options, ElasticSchedule schedule, int microBatch, int commitEvery, int stepPauseMs, int[] adaptive, Path outDir,
                          double targetAccuracy, boolean skipReplay, PrintStream out, PrintStream err) {
        this.options = options;
        this.schedule = schedule;
        this.microBatch = microBatch;
        this.commitEvery = commitEvery;
        this.stepPauseMs = stepPauseMs;
        this.adaptive = adaptive;
        this.outDir = outDir;
        this.targetAccuracy = targetAccuracy;
        this.skipReplay = skipReplay;
        this.out = out;
        this.err = err;
    }

    public int run() throws IOException, InterruptedException {
        long total = ElasticDemoModel.totalSteps(options.trainRows, options.batch, options.epochs);
        int[] range = schedule.worldRange();
        out.printf(Locale.ROOT, "Torus elastic demo: MLP classifier (%d blocks, width %d) on %d generated samples, "
                        + "%d steps of global batch %d (micro-batches of at most %d)%n", options.blocks, options.width,
                options.trainRows, total, options.batch, microBatch);
        out.printf(Locale.ROOT, "  schedule %s; exact fp32 rank-ordered all-reduce, commit every %d step%s, "
                + "checkpointing %s%n", schedule.spec(), commitEvery, commitEvery == 1 ? "" : "s", options.policy);
        if (adaptive != null) {
            out.printf(Locale.ROOT, "  adaptive batch: %d to %d by goodput (gradient noise scale x measured step time), "
                    + "checked every %d steps, AdaScale learning rate; the step count is an estimate%n", adaptive[0],
                    adaptive[1], ElasticDemoWorker.ADAPT_EVERY);
        }
        Files.createDirectories(outDir);
        Path eventsDir = outDir.resolve("elastic-events");
        deleteFlat(eventsDir);
        Path resultFile = outDir.resolve("elastic-result.bin");
        Path replayFile = outDir.resolve("elastic-replay.bin");
        Files.deleteIfExists(resultFile);
        Files.deleteIfExists(replayFile);

        JobSecret secret = JobSecret.generate();
        Map<String, String> env = new LinkedHashMap<>();
        env.put("TORUS_RUN_ID", "elastic-demo-" + ProcessHandle.current().pid());
        env.put(JobSecret.ENV, secret.toHex());
        env.put(LauncherLink.PID_ENV, Long.toString(ProcessHandle.current().pid()));
        env.put("OPENBLAS_NUM_THREADS", "1");
        List<String> args = options.toArgs();
        args.addAll(List.of("--result", resultFile.toString(), "--events", eventsDir.toString(), "--micro-batch",
                "" + microBatch, "--commit-every", "" + commitEvery, "--step-pause-ms", "" + stepPauseMs,
                "--adaptive-min", "" + (adaptive == null ? 0 : adaptive[0]), "--adaptive-max",
                "" + (adaptive == null ? 0 : adaptive[1]), "--min", "" + range[0], "--max", "" + MAX_WORLD));
        List<String> cmd = Launcher.javaCommand(List.of("-Xmx384m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"),
                ElasticDemoWorker.class.getName(), args);

        boolean tty = System.console() != null;
        ProgressBar bar = new ProgressBar(out, label(schedule.start(), options.batchSize()), tty);
        List<Change> changes = new ArrayList<>();
        String failure;
        long trainStart = System.nanoTime();
        Thread hook = new Thread(this::killAll, "elastic-demo-shutdown");
        Runtime.getRuntime().addShutdownHook(hook);
        try (EmbeddedZooKeeper zk = EmbeddedZooKeeper.start()) {
            env.put("TORUS_RDZV_ENDPOINT", zk.connectString());
            for (int i = 0; i < schedule.start(); i++) {
                spawn(cmd, env);
            }
            failure = drive(cmd, env, total, bar, changes);
        } finally {
            killAll();
            try {
                Runtime.getRuntime().removeShutdownHook(hook);
            } catch (IllegalStateException e) {
                // shutting down already
            }
        }
        double trainSeconds = (System.nanoTime() - trainStart) / 1e9;
        if (failure == null && !Files.exists(resultFile)) {
            failure = "no worker wrote the result (" + resultFile + ")";
        }
        if (failure != null) {
            err.println("torus demo --elastic: " + failure);
            return 1;
        }
        ElasticDemoResult run = ElasticDemoResult.read(resultFile);
        ElasticDemoResult replay = null;
        if (!skipReplay) {
            out.println("replaying the surviving history in one process (each step at its world size, ranks summed in "
                    + "rank order) ...");
            List<String> rargs = options.toArgs();
            rargs.addAll(List.of("--history", resultFile.toString(), "--result", replayFile.toString(), "--micro-batch",
                    "" + microBatch));
            Path replayLog = outDir.resolve("elastic-replay.log");
            ProcessBuilder pb = new ProcessBuilder(Launcher.javaCommand(List.of("-Xmx384m", "-XX:+UseSerialGC"),
                    ElasticDemoReplay.class.getName(), rargs)).redirectErrorStream(true)
                    .redirectOutput(replayLog.toFile());
            pb.environment().put("OPENBLAS_NUM_THREADS", "1");
            pb.environment().put(LauncherLink.PID_ENV, Long.toString(ProcessHandle.current().pid()));
            Process p = pb.start();
            boolean ended = p.waitFor(REPLAY_LIMIT_SECONDS, TimeUnit.SECONDS);
            if (!ended || p.exitValue() != 0) {
                p.destroyForcibly();
                err.println("torus demo --elastic: the single-process replay " + (ended ? "failed (exit code "
                        + p.exitValue() + ")" : "did not finish within " + REPLAY_LIMIT_SECONDS + " s") + "; its output "
                        + "is in " + replayLog);
                return 1;
            }
            replay = ElasticDemoResult.read(replayFile);
        }
        return report(total, run, replay, changes, eventsDir, trainSeconds);
    }

    /** Runs the schedule until every worker has exited; returns null, or why the run failed. */
    private String drive(List<String> cmd, Map<String, String> env, long total, ProgressBar bar, List<Change> changes)
            throws IOException, InterruptedException {
        int next = 0;                  // the next event to fire
        long latestGen = -1;
        int world = 0;
        long step = 0;
        Map<Integer, Worker> byRank = new TreeMap<>();
        long dueSince = -1;            // when the job first reached the next event's step
        int lastBatch = 0;
        long trainStart = System.nanoTime();
        boolean tty = System.console() != null;
        long deadline = System.nanoTime() + RUN_LIMIT_MILLIS * 1_000_000;
        while (true) {
            Line l = lines.poll(20, TimeUnit.MILLISECONDS);
            while (l != null) {
                long[] v = l.stderr ? null : parseStepLine(l.text);
                if (v != null) {
                    long s = v[0];
                    int w = (int) v[1];
                    int rank = (int) v[2];
                    long gen = v[3];
                    float loss = Float.intBitsToFloat((int) v[4]);
                    int batchNow = (int) v[5];
                    l.worker.member = true;
                    l.worker.rank = rank;
                    l.worker.generation = gen;
                    if (gen > latestGen) {
                        if (latestGen >= 0) {
                            changes.add(new Change(s - 1, gen, world, w));
                            bar.setLabel(label(w, batchNow));
                            out.printf(Locale.ROOT, "%s  step %d: world %d -> %d (generation %d)%-30s%n", tty ? "\r" : "",
                                    s - 1, world, w, gen, "");
                        }
                        latestGen = gen;
                        world = w;
                        byRank.clear();
                    }
                    if (gen == latestGen) {
                        byRank.put(rank, l.worker);
                        if (rank == 0) {
                            step = s;
                            if (adaptive != null && batchNow != lastBatch) {
                                if (lastBatch > 0) {
                                    out.printf(Locale.ROOT, "%s  step %d: global batch %d -> %d%-30s%n", tty ? "\r" : "",
                                            s, lastBatch, batchNow, "");
                                }
                                lastBatch = batchNow;
                                bar.setLabel(label(w, batchNow));
                            }
                            bar.update((int) s, (int) total, loss,
                                    s * (double) options.batch / ((System.nanoTime() - trainStart) / 1e9));
                        }
                    }
                } else if (!l.stderr && l.text.startsWith(ElasticDemoWorker.FINAL_LINE + " ")) {
                    finalHashes.put(l.worker.index, l.text.substring(ElasticDemoWorker.FINAL_LINE.length() + 1));
                } else {
                    (l.stderr ? err : out).println("[w" + l.worker.index + "] " + l.text);
                }
                l = lines.poll();
            }
            // fire the next batch of events (those sharing a step) once the job got there and the world is as planned
            if (next < schedule.events().size()) {
                ElasticSchedule.Event e = schedule.events().get(next);
                int planned = schedule.plannedWorldBefore(next);
                if (step >= e.step() && dueSince < 0) {
                    dueSince = System.nanoTime();
                }
                if (step >= e.step() && world == planned && byRank.size() == world) {
                    Set<Integer> taken = new HashSet<>();
                    while (next < schedule.events().size() && schedule.events().get(next).step() == e.step()) {
                        fire(schedule.events().get(next), byRank, taken, world, cmd, env);
                        next++;
                    }
                    dueSince = -1;
                } else if (dueSince >= 0 && System.nanoTime() - dueSince > EVENT_WAIT_MILLIS * 1_000_000) {
                    return "event " + e + " could not fire within " + EVENT_WAIT_MILLIS / 1000 + " s: the world is "
                            + world + " at step " + step + ", the schedule expected " + planned;
                }
            }
            // a joiner still waiting for admission when every member is done would wait out its timeout
            boolean membersDone = workers.stream().anyMatch(w -> w.member)
                    && workers.stream().filter(w -> w.member).noneMatch(w -> w.process.isAlive());
            if (membersDone && lines.isEmpty()) {
                for (Worker w : workers) {
                    if (!w.member && w.process.isAlive()) {
                        w.fate = "too late";
                        w.process.destroyForcibly();
                        return "the job finished at step " + step + " before worker w" + w.index + " (started for "
                                + "a join) was admitted; schedule joins earlier, or use more --epochs or --step-pause-ms";
                    }
                }
            }
            boolean anyAlive = false;
            for (Worker w : workers) {
                if (w.process.isAlive()) {
                    anyAlive = true;
                } else if (w.fate.equals("running") && w.process.exitValue() != 0) {
                    return "worker w" + w.index + " (pid " + w.process.pid() + ") exited with code " + w.process.exitValue();
                }
            }
            if (!anyAlive && lines.isEmpty()) {
                if (next < schedule.events().size()) {
                    return "the job finished at step " + step + " before event " + schedule.events().get(next)
                            + " could fire (the world was " + world + ", the schedule expected "
                            + schedule.plannedWorldBefore(next) + "); use more --epochs or earlier steps";
                }
                for (Worker w : workers) {
                    if (w.fate.equals("left") && w.process.exitValue() != 0) {
                        return "worker w" + w.index + " was asked to leave and exited with code " + w.process.exitValue();
                    }
                }
                int plannedEnd = schedule.plannedWorldBefore(schedule.events().size());
                if (world != plannedEnd) {
                    return "the run ended with " + world + " workers, but the schedule " + schedule.spec() + " leads to "
                            + plannedEnd;
                }
                // with an adaptive batch the step count was an estimate; the replay checks that the data was covered
                return step >= total || adaptive != null ? null : "every worker exited at step " + step + " of " + total;
            }
            if (System.nanoTime() > deadline) {
                return "the run did not finish within " + RUN_LIMIT_MILLIS / 60_000 + " minutes";
            }
        }
    }

    /**
     * The fields of a worker's progress line (step, world, rank, generation, loss bits, batch), or null for
     * anything else, a line cut short by a killed worker included.
     */
    static long[] parseStepLine(String text) {
        if (!text.startsWith(ElasticDemoWorker.STEP_LINE + " ")) {
            return null;
        }
        String[] f = text.split(" ");
        if (f.length != 7) {
            return null;
        }
        try {
            return new long[] {Long.parseLong(f[1]), Integer.parseInt(f[2]), Integer.parseInt(f[3]), Long.parseLong(f[4]),
                    Float.floatToRawIntBits(Float.parseFloat(f[5])), Integer.parseInt(f[6])};
        } catch (NumberFormatException e) {
            return null;
        }
    }

    private String label(int world, int batch) {
        return adaptive == null ? "world " + world : "world " + world + ", batch " + batch;
    }

    private void fire(ElasticSchedule.Event e, Map<Integer, Worker> byRank, Set<Integer> taken, int world,
                      List<String> cmd, Map<String, String> env) throws IOException {
        if (e.kind() == ElasticSchedule.Kind.JOIN) {
            Worker w = spawn(cmd, env);
            out.printf(Locale.ROOT, "  %s: started w%d (pid %d)%n", e, w.index, w.process.pid());
            return;
        }
        int rank = e.rank();
        if (rank < 0) {
            rank = world - 1;
            while (taken.contains(rank)) {
                rank--;
            }
        }
        taken.add(rank);
        Worker w = byRank.get(rank);
        if (e.kind() == ElasticSchedule.Kind.LEAVE) {
            w.fate = "left";
            w.process.destroy(); // SIGTERM: a graceful leave
            out.printf(Locale.ROOT, "  %s: SIGTERM to rank %d (w%d, pid %d)%n", e, rank, w.index, w.process.pid());
        } else {
            w.fate = "killed";
            w.process.destroyForcibly(); // SIGKILL
            out.printf(Locale.ROOT, "  %s: SIGKILL to rank %d (w%d, pid %d)%n", e, rank, w.index, w.process.pid());
        }
    }

    private Worker spawn(List<String> cmd, Map<String, String> env) throws IOException {
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.environment().putAll(env);
        Process p = pb.start();
        Worker w = new Worker(workers.size(), p);
        workers.add(w);
        pump(w, p.getInputStream(), false);
        pump(w, p.getErrorStream(), true);
        return w;
    }

    private void pump(Worker w, java.io.InputStream in, boolean stderr) {
        Thread t = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
                for (String s = r.readLine(); s != null; s = r.readLine()) {
                    lines.add(new Line(w, stderr, s.length() > 2000 ? s.substring(0, 2000) + " ..." : s));
                }
            } catch (IOException e) {
                // the process is gone
            }
        }, "elastic-demo-w" + w.index + (stderr ? "-err" : "-out"));
        t.setDaemon(true);
        t.start();
    }

    private void killAll() {
        for (Worker w : workers) {
            if (w.process.isAlive()) {
                w.process.destroyForcibly();
            }
        }
        for (Worker w : workers) {
            try {
                w.process.waitFor(10, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }

    private int report(long total, ElasticDemoResult run, ElasticDemoResult replay, List<Change> changes,
                       Path eventsDir, double trainSeconds) throws IOException {
        boolean accuracyOk = run.testAccuracy() >= targetAccuracy;
        Boolean equal = null;
        double maxDiff = Double.NaN;
        if (replay != null) {
            double[] cmp = compare(run.params(), replay.params());
            equal = cmp[0] == 1;
            maxDiff = cmp[1];
        }
        // every member that finished must hold the same parameters as the others (rank 0's are the result)
        boolean replicasEqual = !finalHashes.isEmpty() && finalHashes.values().stream().distinct().count() == 1;
        List<Map<String, Object>> events = readEvents(eventsDir);
        out.println();
        out.printf(Locale.ROOT, "membership changes seen: %d; training took %.1f s; commits (every %d step%s) took "
                        + "%.1f%% of rank 0's step time%n", changes.size(), trainSeconds, commitEvery,
                commitEvery == 1 ? "" : "s", 100 * run.commitFraction());
        out.printf(Locale.ROOT, "held-out accuracy %.4f (loss %.4f): %s (target %.2f)%n", run.testAccuracy(),
                run.testLoss(), accuracyOk ? "PASS" : "FAIL", targetAccuracy);
        out.printf(Locale.ROOT, "the %d members that finished hold the same parameters: %s%n", finalHashes.size(),
                replicasEqual ? "PASS" : "FAIL " + finalHashes);
        if (replay != null) {
            out.printf(Locale.ROOT, "replayed single process: parameters %s (max |difference| %.3g): %s%n",
                    equal ? "bitwise equal" : "differ", maxDiff, equal ? "PASS" : "FAIL");
        } else {
            out.println("replay skipped (--skip-single): reference_equal is not known");
        }

        Path png = outDir.resolve("loss.png");
        String plotError = null;
        try {
            float[] worldCurve = new float[run.world().length];
            for (int i = 0; i < worldCurve.length; i++) {
                worldCurve[i] = run.world()[i];
            }
            LossPlot.writeWithWorld(png, "Torus elastic demo: training loss and world size", run.loss(), worldCurve);
        } catch (IOException | RuntimeException | Error e) {
            plotError = e.toString();
            err.println("torus demo: could not write " + png + ": " + e);
        }

        Map<String, Object> el = new LinkedHashMap<>();
        el.put("schedule", schedule.spec());
        el.put("events", events);
        el.put("members", members(events));
        el.put("changes_seen", changes.stream().map(c -> Map.of("step", c.step, "generation", c.generation,
                "world_before", c.worldBefore, "world_after", c.worldAfter)).toList());
        el.put("world_per_step", run.world());
        el.put("batch_per_step", run.batch());
        el.put("learning_rate_per_step", run.lr());
        if (adaptive != null) {
            el.put("adaptive_batch", Map.of("min", adaptive[0], "max", adaptive[1], "every_steps",
                    ElasticDemoWorker.ADAPT_EVERY, "min_gain", 0.05, "learning_rate_rule", "AdaScale gain"));
        }
        el.put("commit_every", commitEvery);
        // measured on the member that is rank 0 at the end, over the steps it took part in
        el.put("commit_share_of_step_time", run.commitFraction());
        el.put("micro_batch", microBatch);
        el.put("replay", replay == null ? "skipped" : "done");
        el.put("reference_equal", equal);
        el.put("replicas_equal", replicasEqual);
        el.put("final_members", finalHashes.size());
        el.put("max_param_diff", replay == null ? null : maxDiff);

        Map<String, Object> s = new LinkedHashMap<>();
        s.put("date", Instant.now().toString());
        s.put("mode", "elastic");
        s.put("device", "cpu");
        s.put("hook", "exact fp32 (rank order)");
        s.put("checkpointing", options.policy);
        s.put("global_batch", options.batch);
        s.put("epochs", options.epochs);
        s.put("steps", total);
        s.put("model", Map.of("blocks", options.blocks, "width", options.width, "inputs", DemoData.FEATURES,
                "classes", DemoData.CLASSES));
        s.put("test_loss", run.testLoss());
        s.put("test_accuracy", run.testAccuracy());
        s.put("train_seconds", trainSeconds);
        s.put("step_loss", run.loss());
        s.put("elastic", el);
        s.put("target_accuracy", targetAccuracy);
        if (plotError != null) {
            s.put("plot_error", plotError);
        }
        boolean passed = accuracyOk && replicasEqual && (equal == null || equal) && plotError == null;
        s.put("passed", passed);
        Path json = outDir.resolve("summary.json");
        Files.writeString(json, Json.write(s) + "\n");
        out.println("wrote " + (plotError == null ? png + " and " : "") + json);
        return passed ? 0 : 1;
    }

    /** {1 if bitwise equal else 0, the largest absolute difference} of two parameter vectors. */
    static double[] compare(float[] a, float[] b) {
        boolean equal = a.length == b.length;
        double max = a.length == b.length ? 0 : Double.POSITIVE_INFINITY;
        for (int i = 0; i < Math.min(a.length, b.length); i++) {
            equal &= Float.floatToRawIntBits(a[i]) == Float.floatToRawIntBits(b[i]);
            max = Math.max(max, Math.abs((double) a[i] - b[i]));
        }
        return new double[] {equal ? 1 : 0, max};
    }

    /** Every worker's JSONL events, in file order per worker; a line that is not one of ours is an error. */
    private static List<Map<String, Object>> readEvents(Path dir) throws IOException {
        List<Map<String, Object>> all = new ArrayList<>();
        if (!Files.isDirectory(dir)) {
            return all;
        }
        List<Path> files;
        try (Stream<Path> s = Files.list(dir)) {
            files = s.filter(p -> p.getFileName().toString().endsWith(".jsonl")).sorted().toList();
        }
        for (Path f : files) {
            for (String line : Files.readAllLines(f, StandardCharsets.UTF_8)) {
                if (!line.isBlank()) {
                    all.add(parseEvent(f, line));
                }
            }
        }
        all.sort((a, b) -> Long.compare((Long) a.get("generation_after"), (Long) b.get("generation_after")));
        return all;
    }

    static Map<String, Object> parseEvent(Path file, String line) {
        if (!line.startsWith("{") || !line.endsWith("}")) {
            throw new IllegalArgumentException(file + ": not an event line: " + line);
        }
        Map<String, Object> m = new LinkedHashMap<>();
        String body = line.substring(1, line.length() - 1);
        Matcher mt = EVENT_FIELD.matcher(body);
        int at = 0;
        while (mt.find() && mt.start() == at) {
            String v = mt.group(2);
            m.put(mt.group(1), v.startsWith("\"") ? v.substring(1, v.length() - 1) : (Object) Long.parseLong(v));
            at = mt.end();
            if (at < body.length() && body.charAt(at) == ',') {
                at++;
            }
        }
        if (at != body.length() || !m.containsKey("generation_after")) {
            throw new IllegalArgumentException(file + ": malformed event line: " + line);
        }
        return m;
    }

    /** Per generation, its members as rank and pid, from the events (each member writes one per change it is in). */
    private static List<Map<String, Object>> members(List<Map<String, Object>> events) {
        TreeMap<Long, TreeMap<Long, Long>> gens = new TreeMap<>();
        for (Map<String, Object> e : events) {
            long rank = (Long) e.get("rank");
            if (rank >= 0) {
                gens.computeIfAbsent((Long) e.get("generation_after"), k -> new TreeMap<>()).put(rank, (Long) e.get("pid"));
            }
        }
        List<Map<String, Object>> out = new ArrayList<>();
        gens.forEach((g, ranks) -> {
            List<Map<String, Object>> rs = new ArrayList<>();
            ranks.forEach((r, pid) -> rs.add(Map.of("rank", r, "pid", pid)));
            out.add(Map.of("generation", g, "members", rs));
        });
        return out;
    }

    private static void deleteFlat(Path dir) throws IOException {
        if (!Files.isDirectory(dir)) {
            return;
        }
        try (Stream<Path> s = Files.list(dir)) {
            for (Path p : s.toList()) {
                Files.deleteIfExists(p);
            }
        }
    }
}
