package dev.torus.cli;

import dev.torus.cli.launch.ElasticLauncher;
import dev.torus.cli.launch.LaunchSpec;
import dev.torus.cli.launch.Launcher;
import dev.torus.rendezvous.JobSecret;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code torusrun}: starts the workers of a distributed job on this node, modelled
 * on torchrun. See {@link Launcher} for what it does; docs/PARALLEL.md for the
 * environment each worker gets.
 */
@Command(name = "torusrun", mixinStandardHelpOptions = true, version = "torusrun 0.1.0",
        description = {"Starts N worker processes per node with RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, "
                + "TORUS_RDZV_ENDPOINT and TORUS_RUN_ID set, prefixes their output with the rank, and watches them.",
                "TARGET is a Java main class (run on this launcher's JVM and classpath), a .jar, or with --exec any program."})
public final class TorusRun implements Callable<Integer> {
    @Spec
    CommandSpec commandSpec;

    @Option(names = "--nproc-per-node", defaultValue = "1", description = "Workers on this node (default ${DEFAULT-VALUE}).")
    int nproc;

    @Option(names = "--nnodes", defaultValue = "1", description = "N or MIN:MAX nodes (default ${DEFAULT-VALUE}); more than "
            + "one needs --rdzv-endpoint and --run-id.")
    String nnodes;

    @Option(names = "--rdzv-endpoint", description = "ZooKeeper connect string, e.g. zk1:2181,zk2:2181. Default: an embedded "
            + "server on loopback, started and stopped by this launcher.")
    String endpoint;

    @Option(names = "--run-id", description = "Job name shared by every node (default: a fresh one).")
    String runId;

    @Option(names = "--max-restarts", defaultValue = "0", description = "Restart the whole job up to this many times after "
            + "a worker fails (default ${DEFAULT-VALUE}).")
    int maxRestarts;

    @Option(names = "--rdzv-timeout", defaultValue = "60", description = "Seconds to wait for the minimum number of nodes "
            + "(default ${DEFAULT-VALUE}).")
    double rdzvTimeout;

    @Option(names = "--rdzv-last-call", defaultValue = "2", description = "Seconds to wait for more nodes once the minimum "
            + "has joined (default ${DEFAULT-VALUE}).")
    double lastCall;

    @Option(names = "--error-dir", description = "Where per-failure error files go (default: <tmp>/torusrun-<user>, "
            + "created with mode 0700).")
    Path errorDir;

    @Option(names = "--secret-file", description = "A file holding the job secret (64 hex digits) that every node of the "
            + "job shares; default: " + JobSecret.ENV + " from the environment, or a fresh one for a one-node job.")
    Path secretFile;

    @Option(names = "--stuck-timeout", defaultValue = "30", description = "Seconds after which a worker that is stopped "
            + "(SIGSTOP) or sends no heartbeat counts as failed; 0 turns it off (default ${DEFAULT-VALUE}).")
    double stuckTimeout;

    @Option(names = "--stale-run-age", defaultValue = "24", description = "On an external ensemble, delete runs of this "
            + "job secret that have no live launcher and no write for this many hours (default ${DEFAULT-VALUE}).")
    double staleRunHours;

    @Option(names = "--elastic", description = "An elastic job (workers use ElasticLoop.fromEnv): nodes may join the "
            + "running job later with the same --run-id, --rdzv-endpoint and secret, a failed worker is not restarted "
            + "unless the job falls below MIN, and SIGTERM is a graceful leave.")
    boolean elastic;

    @Option(names = "--join-timeout", defaultValue = "60", description = "With --elastic: seconds a job below MIN waits "
            + "for replacements before it fails (default ${DEFAULT-VALUE}).")
    double joinTimeout;

    @Option(names = "--events", description = "With --elastic: append this node's events (workers started, failed, "
            + "replaced, leaving, exited) to this file as JSON lines.")
    Path events;

    @Option(names = "--jvm-arg", description = "Extra JVM argument for Java workers (repeatable).")
    List<String> jvmArgs = new ArrayList<>();

    @Option(names = "--exec", description = "TARGET is a program to execute, not a Java main class or jar.")
    boolean exec;

    @Parameters(index = "0", paramLabel = "TARGET", description = "Main class, .jar, or program (with --exec).")
    String target;

    @Parameters(index = "1..*", paramLabel = "ARGS", description = "Arguments passed to every worker.")
    List<String> args = new ArrayList<>();

    public static void main(String[] args) {
        System.exit(run(args));
    }

    public static int run(String... args) {
        CommandLine cl = new CommandLine(new TorusRun());
        cl.setStopAtPositional(true);
        cl.setExecutionExceptionHandler(ExpectedFailures.oneLine("torusrun"));
        return cl.execute(args);
    }

    /**
     * The worker command for {@code target}. A main class runs on this JVM's classpath and a
     * jar on its own classpath followed by this JVM's, both through {@code WorkerMain}, which
     * starts the launcher watch first; a program given with {@code --exec} runs as is.
     */
    static List<String> workerCommand(String target, List<String> args, boolean exec, List<String> jvmArgs) {
        if (exec) {
            List<String> cmd = new ArrayList<>();
            cmd.add(target);
            cmd.addAll(args);
            return cmd;
        }
        if (target.endsWith(".jar")) {
            Path jar = Path.of(target).toAbsolutePath();
            String main;
            try (java.util.jar.JarFile jf = new java.util.jar.JarFile(jar.toFile())) {
                java.util.jar.Manifest mf = jf.getManifest();
                main = mf == null ? null : mf.getMainAttributes().getValue(java.util.jar.Attributes.Name.MAIN_CLASS);
            } catch (java.io.IOException e) {
                throw new IllegalArgumentException("TARGET jar " + target + " cannot be read: " + e.getMessage());
            }
            if (main == null || main.isBlank()) {
                throw new IllegalArgumentException("TARGET jar " + target + " has no Main-Class in its manifest");
            }
            List<String> cmd = new ArrayList<>();
            cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
            cmd.addAll(jvmArgs);
            cmd.add("-cp");
            // the jar first, so that its classes win over the launcher's copies
            cmd.add(jar + java.io.File.pathSeparator + System.getProperty("java.class.path"));
            cmd.add(dev.torus.cli.launch.WorkerMain.class.getName());
            cmd.add(main.trim());
            cmd.addAll(args);
            return cmd;
        }
        if (!target.matches("[A-Za-z_$][\\w$]*(\\.[A-Za-z_$][\\w$]*)*")) {
            throw new IllegalArgumentException("TARGET must be a Java main class like com.example.Train, a .jar, "
                    + "or a program with --exec; got '" + target + "'");
        }
        return Launcher.javaCommand(jvmArgs, target, args);
    }

    /** The secret in {@code f}, which must not be open to other users. */
    static JobSecret readSecretFile(Path f) {
        String text;
        try {
            if (!java.nio.file.Files.exists(f)) {
                throw new IllegalArgumentException("--secret-file " + f + " does not exist");
            }
            if (!java.nio.file.Files.isRegularFile(f)) {
                throw new IllegalArgumentException("--secret-file " + f + " must be a regular file holding 64 hex digits");
            }
            if (java.nio.file.Files.size(f) > 1024) {
                throw new IllegalArgumentException("--secret-file " + f + " is " + java.nio.file.Files.size(f)
                        + " bytes; a job secret is 64 hex digits");
            }
            text = new String(java.nio.file.Files.readAllBytes(f), java.nio.charset.StandardCharsets.US_ASCII);
        } catch (java.io.IOException e) {
            throw new IllegalArgumentException("--secret-file " + f + " cannot be read: " + e);
        }
        try {
            java.util.Set<java.nio.file.attribute.PosixFilePermission> p = java.nio.file.Files.getPosixFilePermissions(f);
            for (var open : List.of(java.nio.file.attribute.PosixFilePermission.GROUP_READ,
                    java.nio.file.attribute.PosixFilePermission.OTHERS_READ,
                    java.nio.file.attribute.PosixFilePermission.GROUP_WRITE,
                    java.nio.file.attribute.PosixFilePermission.OTHERS_WRITE)) {
                if (p.contains(open)) {
                    throw new IllegalArgumentException("--secret-file " + f + " is readable or writable by other users (mode "
                            + java.nio.file.attribute.PosixFilePermissions.toString(p) + "); chmod 600 it");
                }
            }
        } catch (java.io.IOException | UnsupportedOperationException e) {
            // no POSIX permissions to check
        }
        return JobSecret.fromHex("--secret-file " + f, text);
    }

    @Override
    public Integer call() throws Exception {
        int[] nodes = LaunchSpec.parseNodes("--nnodes", nnodes);
        if (!(rdzvTimeout > 0)) {
            throw new IllegalArgumentException("--rdzv-timeout must be positive, got " + rdzvTimeout);
        }
        if (!(lastCall >= 0)) {
            throw new IllegalArgumentException("--rdzv-last-call must be >= 0, got " + lastCall);
        }
        if (!(stuckTimeout == 0 || stuckTimeout >= 2)) {
            throw new IllegalArgumentException("--stuck-timeout must be 0 (off) or at least 2 seconds, got " + stuckTimeout);
        }
        LaunchSpec spec = new LaunchSpec(nproc, nodes[0], nodes[1], endpoint, runId, maxRestarts,
                workerCommand(target, args, exec, jvmArgs), Map.of(), errorDir,
                Duration.ofMillis((long) (rdzvTimeout * 1000)), Duration.ofMillis((long) (lastCall * 1000)));
        JobSecret secret = secretFile != null ? readSecretFile(secretFile) : JobSecret.fromEnvironment(System.getenv());
        if (elastic) {
            return runElastic(spec, secret);
        }
        for (String o : new String[] {"--join-timeout", "--events"}) {
            if (commandSpec.commandLine().getParseResult().hasMatchedOption(o)) {
                throw new IllegalArgumentException(o + " needs --elastic");
            }
        }
        Launcher launcher = new Launcher(spec, Launcher.prefixing(System.out, System.err), System.err)
                .stuckTimeout(Duration.ofMillis((long) (stuckTimeout * 1000)));
        if (!(staleRunHours > 0)) {
            throw new IllegalArgumentException("--stale-run-age must be a positive number of hours, got " + staleRunHours);
        }
        launcher.staleRunAge(Duration.ofMillis((long) (staleRunHours * 3_600_000)));
        if (secret != null) {
            launcher.jobSecret(secret);
        }
        Thread hook = new Thread(launcher::shutdown, "torusrun-shutdown");
        Runtime.getRuntime().addShutdownHook(hook);
        int code = launcher.run();
        try {
            Runtime.getRuntime().removeShutdownHook(hook);
        } catch (IllegalStateException e) {
            // already shutting down
        }
        return code;
    }

    private int runElastic(LaunchSpec launchSpec, JobSecret secret) throws Exception {
        if (!(joinTimeout >= 0.001 && joinTimeout <= 7 * 24 * 3600)) {
            throw new IllegalArgumentException("--join-timeout must be between 0.001 and 604800 seconds (7 days), got "
                    + joinTimeout);
        }
        for (String o : new String[] {"--stale-run-age", "--rdzv-last-call", "--max-restarts"}) {
            if (commandSpec.commandLine().getParseResult().hasMatchedOption(o)) {
                throw new IllegalArgumentException(o + " does not apply to --elastic (no node rendezvous, no job "
                        + "restarts: a failed worker is replaced only when the job falls below MIN)");
            }
        }
        ElasticLauncher launcher = new ElasticLauncher(launchSpec, Duration.ofMillis((long) (joinTimeout * 1000)), secret,
                Duration.ofMillis((long) (stuckTimeout * 1000)), Launcher.prefixing(System.out, System.err), System.err);
        if (events != null) {
            launcher.events(events.toAbsolutePath());
        }
        Thread hook = new Thread(launcher::shutdown, "torusrun-leave");
        Runtime.getRuntime().addShutdownHook(hook);
        int code = launcher.run();
        try {
            Runtime.getRuntime().removeShutdownHook(hook);
        } catch (IllegalStateException e) {
            // already shutting down
        }
        return code;
    }
}
