package dev.torus.cli.bench;

import dev.torus.comm.Communicator;

/**
 * One cold worker process for {@link RendezvousBench}: times {@code Communicator.fromEnv()}
 * from a fresh JVM (class loading, crypto setup and all) and prints
 * {@code FROMENV_MS <ms>}.
 */
public final class RendezvousBenchWorker {
    private RendezvousBenchWorker() {}

    public static void main(String[] args) throws Exception {
        long t0 = System.nanoTime();
        try (Communicator c = Communicator.fromEnv()) {
            double ms = (System.nanoTime() - t0) / 1e6;
            System.out.println("FROMENV_MS " + ms);
        }
    }
}
