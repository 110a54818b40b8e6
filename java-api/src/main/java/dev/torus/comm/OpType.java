package dev.torus.comm;

/** The kind of operation a {@link Work} tracks; appears in every error message. */
public enum OpType {
    ALL_REDUCE("allReduce"), BROADCAST("broadcast"), REDUCE("reduce"), ALL_GATHER("allGather"),
    REDUCE_SCATTER("reduceScatter"), ALL_TO_ALL("allToAll"), SEND("send"), RECV("recv"), BARRIER("barrier"),
    COMPRESSED_ALL_REDUCE("compressedAllReduce");

    private final String label;

    OpType(String label) {
        this.label = label;
    }

    /** The method name users call, e.g. {@code allReduce}. */
    public String label() {
        return label;
    }
}
