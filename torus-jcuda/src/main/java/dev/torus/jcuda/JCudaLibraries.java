package dev.torus.jcuda;

import java.util.regex.Matcher;
import java.util.regex.Pattern;

import dev.torus.CudaUnavailableException;

/**
 * Loads JCuda's and JCublas's native libraries once and turns a failed load into one line
 * that says what is missing. JCuda 12.6 links the CUDA runtime statically, so its load
 * rarely fails; JCublas 12.6 links {@code libcublas.so.12} dynamically, and on a machine
 * without CUDA 12's cuBLAS its load ends in a long {@link UnsatisfiedLinkError}. The first
 * failure is kept: every later call reports the same cause instead of a
 * {@link NoClassDefFoundError}.
 */
public final class JCudaLibraries {
    private static final Pattern MISSING_SO = Pattern.compile("(lib[A-Za-z0-9_+.-]+\\.so[0-9.]*): cannot open shared object file");

    private static volatile String runtimeCause;
    private static volatile boolean runtimeLoaded;
    private static volatile String driverCause;
    private static volatile boolean driverLoaded;
    private static volatile String cublasCause;
    private static volatile boolean cublasLoaded;

    private JCudaLibraries() {}

    /**
     * Null when JCuda's driver bindings load (they link {@code libcuda.so.1}, the driver, so they
     * fail on a machine without one); otherwise why not, in one line.
     */
    public static synchronized String driverUnavailableCause() {
        if (!driverLoaded && driverCause == null) {
            try {
                Class.forName("jcuda.driver.JCudaDriver", true, JCudaLibraries.class.getClassLoader());
                driverLoaded = true;
            } catch (ClassNotFoundException e) {
                driverCause = "JCuda's driver bindings (jcuda.driver.JCudaDriver) are not on the class path";
            } catch (LinkageError e) {
                driverCause = explain("JCuda " + version() + "'s driver bindings", "the CUDA driver (libcuda.so.1)", e);
            }
        }
        return driverCause;
    }

    /** Null when JCuda's runtime bindings load; otherwise why not, in one line. */
    public static synchronized String runtimeUnavailableCause() {
        if (!runtimeLoaded && runtimeCause == null) {
            try {
                // loads the natives without touching JCuda's settings (a user's exception flag stays as it is)
                jcuda.runtime.JCuda.initialize();
                runtimeLoaded = true;
            } catch (LinkageError e) {
                runtimeCause = explain("JCuda " + version() + "'s runtime bindings", "the CUDA driver", e);
            }
        }
        return runtimeCause;
    }

    /** Null when JCublas's bindings (and the cuBLAS they link) load; otherwise why not, in one line. */
    public static synchronized String cublasUnavailableCause() {
        if (!cublasLoaded && cublasCause == null) {
            String runtime = runtimeUnavailableCause();
            if (runtime != null) {
                cublasCause = runtime;
                return cublasCause;
            }
            try {
                jcuda.jcublas.JCublas2.initialize();
                cublasLoaded = true;
            } catch (LinkageError e) {
                cublasCause = explain("JCublas " + version(), "cuBLAS 12 (libcublas.so.12)", e);
            }
        }
        return cublasCause;
    }

    static void ensureRuntime(String what) {
        String cause = runtimeUnavailableCause();
        if (cause != null) {
            throw new CudaUnavailableException(what + ": " + cause);
        }
    }

    static void ensureDriver(String what) {
        ensureRuntime(what);
        String cause = driverUnavailableCause();
        if (cause != null) {
            throw new CudaUnavailableException(what + ": " + cause);
        }
    }

    static void ensureCublas(String what) {
        String cause = cublasUnavailableCause();
        if (cause != null) {
            throw new CudaUnavailableException(what + ": " + cause);
        }
    }

    /** The JCuda version on the class path, from its jar's manifest or Maven properties; "12.6" when unknown. */
    static String version() {
        Package p = jcuda.Pointer.class.getPackage();
        String v = p == null ? null : p.getImplementationVersion();
        return v == null ? "12.6" : v;
    }

    /** One line: which library is missing, and what to install, from a load failure's (long) message. */
    static String explain(String binding, String needs, Throwable e) {
        String text = String.valueOf(e.getMessage());
        for (Throwable c = e.getCause(); c != null; c = c.getCause()) {
            text += "\n" + c.getMessage();
        }
        Matcher m = MISSING_SO.matcher(text);
        if (m.find()) {
            String lib = m.group(1);
            return binding + " cannot load: " + lib + " was not found (it needs " + needs + "; install it and put its "
                    + "directory on LD_LIBRARY_PATH)";
        }
        String first = text.lines().filter(l -> !l.isBlank()).findFirst().orElse(e.getClass().getName()).strip();
        return binding + " cannot load (" + e.getClass().getSimpleName() + ": " + first + "; it needs " + needs + ")";
    }
}
