package dev.torus.serve;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;

/**
 * Identifies a model file by content: the first 16 bytes of its SHA-256, in hex. Replicas register it and the
 * router serves only replicas whose digest equals that of its own file.
 */
public final class ModelDigest {
    private ModelDigest() {}

    /** The digest of {@code file}'s bytes. */
    public static String of(Path file) {
        try (InputStream in = Files.newInputStream(file)) {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            byte[] buf = new byte[1 << 16];
            for (int n = in.read(buf); n > 0; n = in.read(buf)) {
                md.update(buf, 0, n);
            }
            byte[] d = md.digest();
            return HexFormat.of().formatHex(d, 0, 16);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read model file " + file + ": " + e.getMessage(), e);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("this JDK has no SHA-256", e);
        }
    }
}
