package dev.torus.cli;

import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;

import dev.torus.zookeeper.EmbeddedZooKeeper;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code ./torus zookeeper}: an embedded ZooKeeper server in the foreground, for a job of several
 * nodes that has no ensemble of its own (a test, or the network-namespace hosts of
 * {@code tools/netns-demo.sh}). Clients must authenticate (digest): torusrun does, with the job
 * secret. It keeps its data in a temporary directory removed at exit; it is one server, not an
 * ensemble, so it is a single point of failure. Stops on SIGINT or SIGTERM.
 */
@Command(name = "torus zookeeper", mixinStandardHelpOptions = true, version = "torus zookeeper 0.1.0",
        description = "Runs one embedded ZooKeeper server (digest authentication required) until interrupted; prints "
                + "its connect string.")
public final class TorusZooKeeper implements Callable<Integer> {
    @Option(names = "--bind", defaultValue = "127.0.0.1", description = "IPv4 address to listen on (default "
            + "${DEFAULT-VALUE}).")
    String bind;

    @Option(names = "--port", defaultValue = "2181", description = "Client port, 0 for a free one (default "
            + "${DEFAULT-VALUE}).")
    int port;

    public static void main(String[] args) {
        System.exit(commandLine().execute(args));
    }

    /** The configured command line: an expected failure prints one line and exits with 2. */
    public static CommandLine commandLine() {
        CommandLine cl = new CommandLine(new TorusZooKeeper());
        cl.setExecutionExceptionHandler(ExpectedFailures.oneLine("torus zookeeper"));
        cl.setParameterExceptionHandler(ExpectedFailures.oneLineParse("torus zookeeper"));
        return cl;
    }

    @Override
    public Integer call() throws InterruptedException {
        if (!bind.matches("\\d{1,3}(\\.\\d{1,3}){3}")) {
            throw new IllegalArgumentException("--bind must be an IPv4 address like 10.0.0.1, got '" + bind + "'");
        }
        if (port < 0 || port > 65535) {
            throw new IllegalArgumentException("--port must be in 0..65535, got " + port);
        }
        EmbeddedZooKeeper zk = EmbeddedZooKeeper.start(new EmbeddedZooKeeper.Options().bindAddress(bind).port(port));
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            zk.close();
            stopped.countDown();
        }, "zookeeper-stop"));
        System.out.println("torus zookeeper: serving at " + zk.connectString() + " (digest authentication required)");
        System.out.flush();
        stopped.await();
        return 0;
    }
}
