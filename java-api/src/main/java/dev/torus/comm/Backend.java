package dev.torus.comm;

/** Collective backends: Gloo for CPU tensors, NCCL for CUDA tensors. */
public enum Backend {
    GLOO, NCCL;

    static Backend parse(String argName, String s) {
        for (Backend b : values()) {
            if (b.name().equalsIgnoreCase(s.trim())) {
                return b;
            }
        }
        throw new IllegalArgumentException(argName + " must be 'gloo' or 'nccl', got '" + s + "'");
    }
}
