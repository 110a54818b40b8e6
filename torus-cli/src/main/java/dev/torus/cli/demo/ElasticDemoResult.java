package dev.torus.cli.demo;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/**
 * What an elastic demo run (or its replay) ends with: the world size, loss, global batch and learning
 * rate of every step of the surviving history, the final parameters, the held-out loss and accuracy, the training time, and the
 * share of the writer's step time that went to commits (NaN for the replay).
 * Written by one process and read by the driver, as a small binary file (written to a temporary
 * name, then moved, so that a half-written file is never read).
 */
record ElasticDemoResult(int[] world, float[] loss, int[] batch, float[] lr, float[] params, float testLoss,
                         float testAccuracy, double seconds, double commitFraction) {
    private static final int MAGIC = 0x54454452; // "TEDR"

    void write(Path file) throws IOException {
        Files.createDirectories(file.toAbsolutePath().getParent());
        Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
        try (DataOutputStream out = new DataOutputStream(new BufferedOutputStream(Files.newOutputStream(tmp)))) {
            out.writeInt(MAGIC);
            out.writeInt(world.length);
            for (int i = 0; i < world.length; i++) {
                out.writeInt(world[i]);
                out.writeFloat(loss[i]);
                out.writeInt(batch[i]);
                out.writeFloat(lr[i]);
            }
            out.writeInt(params.length);
            for (float p : params) {
                out.writeFloat(p);
            }
            out.writeFloat(testLoss);
            out.writeFloat(testAccuracy);
            out.writeDouble(seconds);
            out.writeDouble(commitFraction);
        }
        Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }

    static ElasticDemoResult read(Path file) throws IOException {
        long size = Files.size(file);
        try (DataInputStream in = new DataInputStream(new BufferedInputStream(Files.newInputStream(file)))) {
            if (in.readInt() != MAGIC) {
                throw new IOException(file + " is not an elastic demo result");
            }
            int steps = in.readInt();
            if (steps < 0 || 16L * steps > size) {
                throw new IOException(file + ": bad step count " + steps);
            }
            int[] world = new int[steps];
            float[] loss = new float[steps];
            int[] batch = new int[steps];
            float[] lr = new float[steps];
            for (int i = 0; i < steps; i++) {
                world[i] = in.readInt();
                loss[i] = in.readFloat();
                batch[i] = in.readInt();
                lr[i] = in.readFloat();
            }
            int n = in.readInt();
            if (n < 0 || 4L * n > size) {
                throw new IOException(file + ": bad parameter count " + n);
            }
            float[] params = new float[n];
            for (int i = 0; i < n; i++) {
                params[i] = in.readFloat();
            }
            return new ElasticDemoResult(world, loss, batch, lr, params, in.readFloat(), in.readFloat(), in.readDouble(),
                    in.readDouble());
        }
    }
}
