package dev.torus.build;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.jni.TorusNative;
import dev.torus.tensor.Tensor;
import dev.torus.zookeeper.EmbeddedZooKeeper;
import dev.torus.zookeeper.ZooKeeperStore;
import java.io.File;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;
import java.util.spi.ToolProvider;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The {@code dev.torus} module, used from a consumer module on the module path, as a user who
 * wants the raw-address entry points out of reach would use it:
 * <ul>
 *   <li>a consumer that uses the API compiles and runs (quantizes; forms a communicator through
 *       the ZooKeeper store, which stays on the class path and is found as a service);</li>
 *   <li>a consumer that names {@code dev.torus.jni} or {@code dev.torus.internal} does not compile;</li>
 *   <li>at run time, {@code Tensor.dataAddress} refuses anything but the internal token, and the
 *       token cannot be read by reflection.</li>
 * </ul>
 */
@Tag("build")
class ModuleBoundaryTest {
    // what dev.torus needs on the module path: itself, the bindings and their platform jar, JavaCPP, the presets, SLF4J,
    // Jackson's streaming core, and the serving stack's Netty, Micrometer (Prometheus client) and HdrHistogram
    private static final Pattern MODULE_JARS =
            Pattern.compile("(torus-api|torus-native|javacpp|cuda|openblas|slf4j-api|jackson-core|netty-[a-z-]+"
                    + "|micrometer-[a-z-]+|prometheus-metrics-[a-z-]+|HdrHistogram)-[^"
                    + Pattern.quote(File.separator) + "]*\\.jar");
    // the platform jars hold only native libraries, so nothing requires them: a module-path user adds them
    // (OpenBLAS's for the nn layers; the cuda one on a GPU host)
    private static final String ADD_PLATFORMS =
            "dev.torus.jni.linux.x86_64,org.bytedeco.javacpp.linux.x86_64,org.bytedeco.openblas.linux.x86_64";

    private static String modulePath;
    private static String classPath;

    @TempDir
    Path dir;

    @BeforeAll
    static void paths() throws URISyntaxException {
        Set<String> mp = new LinkedHashSet<>();
        mp.add(location(Tensor.class));       // a jar, or target/classes in a reactor build: both are modules
        mp.add(location(TorusNative.class));
        List<String> cp = new ArrayList<>();
        for (String e : System.getProperty("java.class.path").split(File.pathSeparator)) {
            if (mp.contains(e)) {
                continue;
            }
            if (MODULE_JARS.matcher(Path.of(e).getFileName().toString()).matches()) {
                mp.add(e);
            } else {
                cp.add(e);
            }
        }
        modulePath = String.join(File.pathSeparator, mp);
        classPath = String.join(File.pathSeparator, cp);
    }

    private static String location(Class<?> c) throws URISyntaxException {
        return Path.of(c.getProtectionDomain().getCodeSource().getLocation().toURI()).toString();
    }

    @Test
    void aConsumerModuleQuantizesAndFormsACommunicatorThroughTheStoreService() throws Exception {
        Path out = compile("""
                package app;

                import dev.torus.DType;
                import dev.torus.comm.Communicator;
                import dev.torus.comm.ReduceOp;
                import dev.torus.memory.Allocator;
                import dev.torus.quant.QuantSpec;
                import dev.torus.quant.QuantizedTensor;
                import dev.torus.quant.Quantizer;
                import dev.torus.tensor.Tensor;
                import java.time.Duration;

                public class Main {
                    public static void main(String[] args) {
                        float[] data = new float[512];
                        for (int i = 0; i < data.length; i++) {
                            data[i] = (float) Math.cos(i * 0.02) * 2;
                        }
                        try (Allocator root = Allocator.root("app");
                             Tensor x = Tensor.fromArray(root, data, data.length);
                             QuantizedTensor q = Quantizer.quantize(x, QuantSpec.int8Symmetric().perTensor());
                             Tensor y = Quantizer.dequantize(q, DType.FLOAT32)) {
                            float[] back = y.toFloatArray();
                            double worst = 0;
                            for (int i = 0; i < data.length; i++) {
                                worst = Math.max(worst, Math.abs(back[i] - data[i]));
                            }
                            System.out.println("max-error " + worst);
                            try (dev.torus.nn.Mlp mlp = new dev.torus.nn.Mlp(4, 8, 1, 2, 0f, dev.torus.Device.cpu(),
                                    root, 3);
                                 Tensor in = Tensor.fromArray(root, new float[] {1, 2, 3, 4}, 1, 4);
                                 dev.torus.recompute.CheckpointedSequential net = new dev.torus.recompute
                                         .CheckpointedSequential(mlp.layers(), dev.torus.recompute.CheckpointPolicy.none(),
                                         root, 3);
                                 Tensor logits = net.forward(in)) {
                                System.out.println("logits " + logits.numel());
                            }
                            try (Communicator c = Communicator.builder().endpoint(args[0]).runId(args[1])
                                    .rank(0).size(1).timeout(Duration.ofSeconds(20)).build()) {
                                c.allReduce(x, ReduceOp.SUM);
                                System.out.println("allreduce " + x.toFloatArray()[1]);
                            }
                        }
                    }
                }
                """);
        try (EmbeddedZooKeeper zk = EmbeddedZooKeeper.startWithoutAuth()) {
            Result r = java(out, "app/app.Main", zk.connectString(), "module-" + ProcessHandle.current().pid());
            assertEquals(0, r.code, "the consumer module failed:\n" + r.output);
            String err = r.line("max-error ");
            assertTrue(Double.parseDouble(err) <= 2.0 / 127 / 2 + 1e-6, "int8 round trip error " + err + "\n" + r.output);
            assertEquals(String.valueOf((float) Math.cos(0.02) * 2), r.line("allreduce "), r.output);
            assertEquals("2", r.line("logits "), "an MLP forward (OpenBLAS GEMM) on the module path: " + r.output);
        }
    }

    @Test
    void aConsumerModuleCannotNameTheBindingsOrTheInternalToken() throws Exception {
        String jni = compileErrors("""
                package app;
                public class Main {
                    public static void main(String[] args) {
                        dev.torus.jni.TorusNative.torus_host_zero(64L, 64L);
                    }
                }
                """);
        assertTrue(jni.contains("dev.torus.jni") && (jni.contains("not visible") || jni.contains("does not export")),
                "naming dev.torus.jni must not compile:\n" + jni);
        String internal = compileErrors("""
                package app;
                public class Main {
                    public static void main(String[] args) {
                        System.out.println(dev.torus.internal.NativeAccess.TOKEN);
                    }
                }
                """);
        assertTrue(internal.contains("dev.torus.internal") && (internal.contains("not visible")
                || internal.contains("does not export")), "naming dev.torus.internal must not compile:\n" + internal);
    }

    @Test
    void atRunTimeTheAddressNeedsTheTokenAndTheTokenIsOutOfReach() throws Exception {
        Path out = compile("""
                package app;

                import dev.torus.memory.Allocator;
                import dev.torus.tensor.Tensor;

                public class Main {
                    public static void main(String[] args) throws Exception {
                        try (Allocator root = Allocator.root("app");
                             Tensor x = Tensor.fromArray(root, new float[] {1, 2}, 2)) {
                            try {
                                x.dataAddress(null);
                                System.out.println("address: given");
                            } catch (IllegalArgumentException e) {
                                System.out.println("address: refused " + e.getMessage());
                            }
                            Class<?> c = Class.forName("dev.torus.internal.NativeAccess");
                            try {
                                Object token = c.getField("TOKEN").get(null);
                                System.out.println("token: read " + token);
                            } catch (IllegalAccessException e) {
                                System.out.println("token: refused");
                            }
                        }
                    }
                }
                """);
        Result r = java(out, "app/app.Main");
        assertEquals(0, r.code, r.output);
        assertTrue(r.line("address: ").startsWith("refused Tensor.dataAddress: token must be"), r.output);
        assertEquals("refused", r.line("token: "), r.output);
    }

    /** The consumer's ZooKeeper store is not a module: a clear error when no provider is installed. */
    @Test
    void withoutTheZooKeeperArtifactTheEndpointErrorSaysWhatIsMissing() throws Exception {
        Path out = compile("""
                package app;

                import dev.torus.comm.Communicator;

                public class Main {
                    public static void main(String[] args) {
                        try {
                            Communicator.builder().endpoint("127.0.0.1:1").runId("r").rank(0).size(1).build();
                        } catch (IllegalArgumentException e) {
                            System.out.println("error " + e.getMessage());
                        }
                    }
                }
                """);
        Result r = runJava(List.of("--module-path", modulePath + File.pathSeparator + out, "--add-modules", ADD_PLATFORMS,
                "-m", "app/app.Main"));
        assertEquals(0, r.code, r.output);
        assertEquals("endpoint '127.0.0.1:1': no store provider is installed; add the torus-zookeeper artifact to the "
                + "class path", r.line("error "), r.output);
        assertNotEquals(-1, ZooKeeperStore.DEFAULT_MAX_VALUE_BYTES); // the test itself has the artifact
    }

    private Path compile(String main) throws IOException {
        Path src = write(main);
        Path out = dir.resolve("out");
        String errors = javac(src, out);
        assertEquals("", errors, "the consumer module must compile");
        return out;
    }

    private String compileErrors(String main) throws IOException {
        Path src = write(main);
        String errors = javac(src, dir.resolve("out"));
        assertNotEquals("", errors, "the consumer module must not compile");
        return errors;
    }

    private Path write(String main) throws IOException {
        Path src = dir.resolve("src");
        Files.createDirectories(src.resolve("app"));
        Files.writeString(src.resolve("module-info.java"), "module app { requires dev.torus; }\n");
        Files.writeString(src.resolve("app/Main.java"), main);
        return src;
    }

    private String javac(Path src, Path out) {
        ToolProvider javac = ToolProvider.findFirst("javac").orElseThrow(() -> new AssertionError("no javac in this JDK"));
        StringWriter w = new StringWriter();
        int code = javac.run(new PrintWriter(w), new PrintWriter(w), "--release", "17", "--module-path", modulePath,
                "-d", out.toString(), src.resolve("module-info.java").toString(), src.resolve("app/Main.java").toString());
        return code == 0 ? "" : w.toString().isEmpty() ? "javac exit " + code : w.toString();
    }

    private Result java(Path out, String main, String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of("--module-path", modulePath + File.pathSeparator + out,
                "-cp", classPath, "--add-modules", ADD_PLATFORMS, "-m", main));
        cmd.addAll(Arrays.asList(args));
        return runJava(cmd);
    }

    private Result runJava(List<String> args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString()));
        cmd.addAll(args);
        Path log = dir.resolve("out-" + System.nanoTime() + ".txt");
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        if (!p.waitFor(120, TimeUnit.SECONDS)) {
            p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            return new Result(-1, "timed out:\n" + Files.readString(log));
        }
        return new Result(p.exitValue(), Files.readString(log, StandardCharsets.UTF_8));
    }

    private record Result(int code, String output) {
        String line(String prefix) {
            return output.lines().filter(l -> l.startsWith(prefix)).map(l -> l.substring(prefix.length())).findFirst()
                    .orElse("<no line '" + prefix + "'>");
        }
    }
}
