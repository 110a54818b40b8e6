package dev.torus.serve;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.cli.serve.ServeStack;
import dev.torus.zookeeper.ZooKeeperReplicaRegistry;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.jar.JarFile;
import org.junit.jupiter.api.Test;

/**
 * The serving path never uses Java serialization: no class of {@code dev.torus.serve}, of the CLI's serving
 * classes or of the ZooKeeper replica registry refers to {@code ObjectInputStream} or {@code ObjectOutputStream}
 * (checked in the compiled class files' constant pools).
 */
class NoJavaSerializationTest {
    private static final String[] FORBIDDEN = {"java/io/ObjectInputStream", "java/io/ObjectOutputStream"};

    private static List<byte[]> classes(Class<?> anchor, String packagePath) throws Exception {
        Path where = Path.of(anchor.getProtectionDomain().getCodeSource().getLocation().toURI());
        List<byte[]> out = new ArrayList<>();
        if (Files.isDirectory(where)) {
            try (var walk = Files.walk(where.resolve(packagePath))) {
                for (Path p : walk.filter(f -> f.toString().endsWith(".class")).toList()) {
                    out.add(Files.readAllBytes(p));
                }
            }
        } else {
            try (JarFile jar = new JarFile(where.toFile())) {
                for (var e : java.util.Collections.list(jar.entries())) {
                    if (e.getName().startsWith(packagePath) && e.getName().endsWith(".class")) {
                        out.add(jar.getInputStream(e).readAllBytes());
                    }
                }
            }
        }
        return out;
    }

    @Test
    void noServingClassRefersToJavaSerialization() throws Exception {
        List<byte[]> all = new ArrayList<>();
        all.addAll(classes(InferenceRouter.class, "dev/torus/serve/"));
        all.addAll(classes(ServeStack.class, "dev/torus/cli/serve/"));
        all.addAll(classes(ZooKeeperReplicaRegistry.class, "dev/torus/zookeeper/"));
        assertTrue(all.size() > 20, "too few classes found: " + all.size());
        for (byte[] c : all) {
            String text = new String(c, StandardCharsets.ISO_8859_1);
            for (String f : FORBIDDEN) {
                assertFalse(text.contains(f), "a serving class refers to " + f);
            }
        }
    }
}
