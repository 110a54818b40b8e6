package dev.torus.testing;

/** Prints the CPU kernel thread count Torus picked for this process (for the affinity test). */
public final class PrintCpuThreads {
    private PrintCpuThreads() {}

    public static void main(String[] args) {
        System.out.println("threads=" + dev.torus.NativeLibrary.cpuThreads());
    }
}
