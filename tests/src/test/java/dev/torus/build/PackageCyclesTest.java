package dev.torus.build;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.tensor.Tensor;
import java.io.File;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.regex.Pattern;
import java.util.spi.ToolProvider;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

/**
 * The library's packages form layers: jdeps, run on the torus-api classes, finds no
 * package that depends on itself through others (no cycle such as dev.torus ↔
 * dev.torus.memory).
 */
class PackageCyclesTest {

    private static final Pattern REQUIRED_JARS =
            Pattern.compile("(torus-native|javacpp|cuda|openblas|slf4j-api|jackson-core|netty-[a-z-]+|micrometer-[a-z-]+|prometheus-metrics-[a-z-]+|HdrHistogram)-[^/]*\\.jar");

    @Test
    void theLibraryHasNoPackageCycles() throws Exception {
        Path classes = Path.of(Tensor.class.getProtectionDomain().getCodeSource().getLocation().toURI());
        ToolProvider jdeps = ToolProvider.findFirst("jdeps").orElseThrow(() -> new AssertionError("no jdeps in this JDK"));
        StringWriter out = new StringWriter();
        // the module dev.torus requires these; jdeps resolves them from a module path
        String modulePath = Arrays.stream(System.getProperty("java.class.path").split(File.pathSeparator))
                .filter(e -> REQUIRED_JARS.matcher(Path.of(e).getFileName().toString()).matches())
                .collect(Collectors.joining(File.pathSeparator));
        int code = jdeps.run(new PrintWriter(out), new PrintWriter(out), "--multi-release", "17", "--module-path", modulePath,
                "-verbose:package", "-filter:none", classes.toString());
        assertEquals(0, code, out.toString());
        Map<String, Set<String>> edges = new TreeMap<>();
        for (String line : out.toString().split("\n")) {
            String[] f = line.trim().split("\\s+");
            // "   dev.torus.memory    -> dev.torus    torus-api-....jar"
            if (f.length >= 3 && f[1].equals("->") && f[0].startsWith("dev.torus") && f[2].startsWith("dev.torus")
                    && !f[0].equals(f[2])) {
                edges.computeIfAbsent(f[0], k -> new TreeSet<>()).add(f[2]);
            }
        }
        assertTrue(edges.size() >= 8, "jdeps reported too few packages; its output:\n" + out);
        List<List<String>> cycles = stronglyConnected(edges);
        assertTrue(cycles.isEmpty(), "package cycles " + cycles + "; edges " + edges);
    }

    /** Tarjan's algorithm; returns the components with more than one package. */
    private static List<List<String>> stronglyConnected(Map<String, Set<String>> edges) {
        Map<String, Integer> index = new HashMap<>();
        Map<String, Integer> low = new HashMap<>();
        List<String> stack = new ArrayList<>();
        Set<String> onStack = new HashSet<>();
        List<List<String>> out = new ArrayList<>();
        int[] next = {0};
        for (String v : edges.keySet()) {
            if (!index.containsKey(v)) {
                visit(v, edges, index, low, stack, onStack, out, next);
            }
        }
        return out;
    }

    private static void visit(String v, Map<String, Set<String>> edges, Map<String, Integer> index,
                              Map<String, Integer> low, List<String> stack, Set<String> onStack,
                              List<List<String>> out, int[] next) {
        index.put(v, next[0]);
        low.put(v, next[0]++);
        stack.add(v);
        onStack.add(v);
        for (String w : edges.getOrDefault(v, Set.of())) {
            if (!index.containsKey(w)) {
                visit(w, edges, index, low, stack, onStack, out, next);
                low.put(v, Math.min(low.get(v), low.get(w)));
            } else if (onStack.contains(w)) {
                low.put(v, Math.min(low.get(v), index.get(w)));
            }
        }
        if (low.get(v).equals(index.get(v))) {
            List<String> comp = new ArrayList<>();
            String w;
            do {
                w = stack.remove(stack.size() - 1);
                onStack.remove(w);
                comp.add(w);
            } while (!w.equals(v));
            if (comp.size() > 1) {
                out.add(comp);
            }
        }
    }
}
