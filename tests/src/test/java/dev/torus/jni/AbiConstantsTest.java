package dev.torus.jni;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.DType;
import java.io.IOException;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * The Java copies of the C ABI's constants must equal the headers' values: a status code
 * or dtype code that drifts would map a native failure to the wrong exception, or hand a
 * kernel the wrong element type. Reads the headers from the source tree.
 */
class AbiConstantsTest {

    private static Map<String, Integer> constants(String relative) throws IOException {
        String root = System.getProperty("torus.sourceRoot");
        Assumptions.assumeTrue(root != null && Files.isDirectory(Path.of(root, "kernels")),
                "needs the source tree (set -Dtorus.sourceRoot); the GPU-host bundle has only jars");
        String text = Files.readString(Path.of(root, relative));
        Map<String, Integer> out = new HashMap<>();
        Matcher enums = Pattern.compile("\\b(TORUS_\\w+)\\s*=\\s*(-?\\d+)").matcher(text);
        while (enums.find()) {
            out.put(enums.group(1), Integer.parseInt(enums.group(2)));
        }
        Matcher defines = Pattern.compile("#define\\s+(TORUS_\\w+)\\s+(-?\\d+)\\b").matcher(text);
        while (defines.find()) {
            out.put(defines.group(1), Integer.parseInt(defines.group(2)));
        }
        return out;
    }

    private static int compare(Class<?> binding, String prefix, Map<String, Integer> header) throws Exception {
        int n = 0;
        for (Field f : binding.getDeclaredFields()) {
            int m = f.getModifiers();
            if (!Modifier.isStatic(m) || !Modifier.isFinal(m) || f.getType() != int.class || !Modifier.isPublic(m)) {
                continue;
            }
            String name = prefix + f.getName();
            assertTrue(header.containsKey(name), binding.getSimpleName() + "." + f.getName() + " has no " + name
                    + " in the header");
            assertEquals(header.get(name).intValue(), f.getInt(null), binding.getSimpleName() + "." + f.getName()
                    + " differs from " + name);
            n++;
        }
        return n;
    }

    @Test
    void kernelStatusCodesMatchTorusH() throws Exception {
        Map<String, Integer> h = constants("kernels/include/torus/torus.h");
        assertTrue(compare(TorusNative.class, "TORUS_", h) >= 6);
    }

    @Test
    void glooStatusOpAndAlgorithmCodesMatchTorusGlooH() throws Exception {
        Map<String, Integer> h = constants("native/cpp/include/torus/torus_gloo.h");
        assertTrue(compare(GlooNative.class, "TORUS_GLOO_", h) >= 10);
    }

    @Test
    void dtypeCodesMatchTheTorusDtypeEnum() throws Exception {
        Map<String, Integer> h = constants("kernels/include/torus/torus.h");
        for (DType d : DType.values()) {
            assertEquals(h.get("TORUS_" + d.name()), Integer.valueOf(d.code()), "DType." + d + " code");
        }
    }

    @Test
    void reduceOpCodesMatchTorusGlooH() throws Exception {
        Map<String, Integer> h = constants("native/cpp/include/torus/torus_gloo.h");
        Field code = dev.torus.comm.ReduceOp.class.getDeclaredField("code");
        code.setAccessible(true);
        for (dev.torus.comm.ReduceOp op : dev.torus.comm.ReduceOp.values()) {
            assertEquals(h.get("TORUS_GLOO_" + op.name()), Integer.valueOf(code.getInt(op)), "ReduceOp." + op + " code");
        }
    }
}
