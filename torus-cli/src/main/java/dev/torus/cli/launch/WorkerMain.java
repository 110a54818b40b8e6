package dev.torus.cli.launch;

import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.util.Arrays;

/**
 * The entry point of a Java worker that torusrun starts by main class:
 * {@code WorkerMain <main class> [args]}. It starts the {@link LauncherLink launcher
 * watch} (so the worker dies with its launcher, and heartbeats while it lives), then
 * runs the main class as {@code java} would.
 */
public final class WorkerMain {
    private WorkerMain() {}

    public static void main(String[] args) throws Throwable {
        if (args.length == 0) {
            System.err.println("torusrun worker: expected a main class as the first argument");
            System.exit(2);
        }
        LauncherLink.startFromEnvironment();
        Class<?> cls;
        try {
            cls = Class.forName(args[0], false, ClassLoader.getSystemClassLoader());
        } catch (ClassNotFoundException e) {
            System.err.println("torusrun worker: main class '" + args[0] + "' is not on the classpath");
            System.exit(2);
            return;
        }
        MethodHandle main;
        try {
            main = MethodHandles.publicLookup().findStatic(cls, "main", MethodType.methodType(void.class, String[].class));
        } catch (NoSuchMethodException | IllegalAccessException e) {
            System.err.println("torusrun worker: class '" + args[0] + "' has no public static void main(String[])");
            System.exit(2);
            return;
        }
        main.invokeExact(Arrays.copyOfRange(args, 1, args.length));
    }
}
