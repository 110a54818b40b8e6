package dev.torus.build;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A separate Maven project that depends on the installed {@code dev.torus:torus-api}, as a
 * new user's would: its runtime classpath must hold the library and its runtime
 * dependencies (the platform jar of torus-native included) and no CLI library (picocli,
 * XChart, an SLF4J provider, torus-cli); and it must compile and quantize a tensor.
 *
 * <p>Needs the artifacts installed in the local repository, which {@code ./torus test}
 * ({@code mvn install}) does before this module's tests run.
 */
@Tag("build")
class ConsumerProjectTest {
    private static final List<String> CLI_ONLY = List.of("picocli", "xchart", "slf4j-simple", "logback-classic",
            "log4j-slf4j", "torus-cli");

    @TempDir
    Path dir;

    @Test
    void aConsumerOfTorusApiGetsNoCliLibraryAndCanQuantize() throws Exception {
        String version = System.getProperty("torus.version");
        String repo = System.getProperty("torus.mavenRepo");
        // outside Maven (the GPU-host bundle runs the tests from jars) there is nothing to build against
        assumeTrue(version != null && repo != null, "runs under Maven only (./torus test)");
        Path installed = Path.of(repo, "dev", "torus", "torus-api", version, "torus-api-" + version + ".jar");
        Path built = Path.of(System.getProperty("torus.sourceRoot"), "java-api", "target", "torus-api-" + version + ".jar");
        assertTrue(Files.exists(installed), "torus-api " + version + " is not installed in " + repo
                + ": run the tests with ./torus test (mvn install), not mvn test");
        assertTrue(!Files.exists(built) || Files.mismatch(installed, built) == -1,
                "the installed torus-api differs from the one just built: run ./torus test (mvn install), not mvn test");
        Files.writeString(dir.resolve("pom.xml"), pom("torus-api", version));
        Path src = Files.createDirectories(dir.resolve("src/main/java/com/example"));
        Files.writeString(src.resolve("Consume.java"), """
                package com.example;

                import dev.torus.DType;
                import dev.torus.memory.Allocator;
                import dev.torus.quant.QuantSpec;
                import dev.torus.quant.QuantizedTensor;
                import dev.torus.quant.Quantizer;
                import dev.torus.tensor.Tensor;

                public class Consume {
                    public static void main(String[] args) {
                        float[] data = new float[1024];
                        for (int i = 0; i < data.length; i++) {
                            data[i] = (float) Math.sin(i * 0.01) * 3;
                        }
                        try (Allocator root = Allocator.root("consumer");
                             Tensor x = Tensor.fromArray(root, data, data.length);
                             QuantizedTensor q = Quantizer.quantize(x, QuantSpec.int8Symmetric().blockwise(256));
                             Tensor y = Quantizer.dequantize(q, DType.FLOAT32)) {
                            float[] back = y.toFloatArray();
                            double worst = 0;
                            for (int i = 0; i < data.length; i++) {
                                worst = Math.max(worst, Math.abs(back[i] - data[i]));
                            }
                            System.out.println("max-error " + worst);
                        }
                    }
                }
                """);
        Path cpFile = dir.resolve("cp.txt");
        mvn("compile", "dependency:build-classpath", "-Dmdep.outputFile=" + cpFile, "-Dmdep.includeScope=runtime");
        List<String> jars = Arrays.asList(Files.readString(cpFile).trim().split(":"));
        List<String> names = jars.stream().map(j -> Path.of(j).getFileName().toString()).toList();
        for (String banned : CLI_ONLY) {
            assertTrue(names.stream().noneMatch(n -> n.startsWith(banned)),
                    "a torus-api consumer must not get " + banned + "; its runtime classpath: " + names);
        }
        assertTrue(names.contains("torus-native-" + version + "-linux-x86_64.jar"),
                "the platform jar of torus-native comes with torus-api: " + names);
        assertTrue(names.contains("torus-api-" + version + ".jar"), names.toString());
        // the ZooKeeper store is its own artifact (torus-zookeeper): torus-api alone brings no ZooKeeper
        assertTrue(names.stream().noneMatch(n -> n.startsWith("zookeeper") || n.startsWith("curator")),
                "a torus-api consumer must not get ZooKeeper or Curator: " + names);

        String cp = dir.resolve("target/classes") + ":" + String.join(":", jars);
        List<String> cmd = List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-cp", cp,
                "com.example.Consume");
        Result r = exec(cmd, 120);
        assertEquals(0, r.code, "the consumer's main failed:\n" + r.output);
        String line = r.output.lines().filter(l -> l.startsWith("max-error ")).findFirst().orElse("");
        assertTrue(!line.isEmpty(), "no result line in:\n" + r.output);
        double err = Double.parseDouble(line.substring("max-error ".length()));
        // blockwise int8 of values in [-3, 3]: half a step of 3/127 at most
        assertTrue(err > 0 && err <= 3.0 / 127 / 2 + 1e-6, "int8 round-trip error " + err);
    }

    /** The CLI is an application: it brings exactly one SLF4J provider, so it prints no "no providers" warning. */
    @Test
    void aConsumerOfTorusCliGetsExactlyOneLoggingProvider() throws Exception {
        String version = System.getProperty("torus.version");
        String repo = System.getProperty("torus.mavenRepo");
        assumeTrue(version != null && repo != null, "runs under Maven only (./torus test)");
        Files.writeString(dir.resolve("pom.xml"), pom("torus-cli", version));
        Path cpFile = dir.resolve("cp.txt");
        mvn("dependency:build-classpath", "-Dmdep.outputFile=" + cpFile, "-Dmdep.includeScope=runtime");
        List<String> names = Arrays.stream(Files.readString(cpFile).trim().split(":"))
                .map(j -> Path.of(j).getFileName().toString()).toList();
        List<String> providers = names.stream().filter(n -> n.startsWith("slf4j-simple") || n.startsWith("logback-classic")
                || n.startsWith("slf4j-reload4j") || n.startsWith("log4j-slf4j")).toList();
        assertEquals(1, providers.size(), "providers on the CLI's runtime classpath: " + providers);
        assertTrue(names.stream().anyMatch(n -> n.startsWith("picocli")), names.toString());
    }

    private void mvn(String... goals) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of("mvn", "-B", "-q", "-o", "-Dmaven.repo.local="
                + System.getProperty("torus.mavenRepo")));
        cmd.addAll(List.of(goals));
        Result r = exec(cmd, 300);
        assertEquals(0, r.code, String.join(" ", cmd) + " failed:\n" + r.output);
    }

    private record Result(int code, String output) {}

    private Result exec(List<String> cmd, int seconds) throws IOException, InterruptedException {
        Path log = dir.resolve("out-" + System.nanoTime() + ".txt");
        Process p = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true)
                .redirectOutput(log.toFile()).start();
        if (!p.waitFor(seconds, TimeUnit.SECONDS)) {
            p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            return new Result(-1, "timed out after " + seconds + " s:\n" + Files.readString(log));
        }
        return new Result(p.exitValue(), Files.readString(log, StandardCharsets.UTF_8));
    }

    private static String pom(String artifact, String version) {
        return """
                <?xml version="1.0" encoding="UTF-8"?>
                <project xmlns="http://maven.apache.org/POM/4.0.0">
                  <modelVersion>4.0.0</modelVersion>
                  <groupId>com.example</groupId>
                  <artifactId>torus-consumer</artifactId>
                  <version>1.0</version>
                  <properties>
                    <maven.compiler.release>17</maven.compiler.release>
                    <project.build.sourceEncoding>UTF-8</project.build.sourceEncoding>
                  </properties>
                  <dependencies>
                    <dependency>
                      <groupId>dev.torus</groupId>
                      <artifactId>ARTIFACT</artifactId>
                      <version>VERSION</version>
                    </dependency>
                  </dependencies>
                  <build>
                    <plugins>
                      <plugin>
                        <artifactId>maven-compiler-plugin</artifactId>
                        <version>3.13.0</version>
                      </plugin>
                      <plugin>
                        <artifactId>maven-resources-plugin</artifactId>
                        <version>3.3.1</version>
                      </plugin>
                      <plugin>
                        <artifactId>maven-dependency-plugin</artifactId>
                        <version>3.8.1</version>
                      </plugin>
                    </plugins>
                  </build>
                </project>
                """.replace("VERSION", version).replace("ARTIFACT", artifact);
    }
}
