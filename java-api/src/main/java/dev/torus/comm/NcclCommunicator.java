package dev.torus.comm;

final class NcclCommunicator {
    private NcclCommunicator() {}

    static Communicator create(CommSpec spec) {
        throw new UnsupportedOperationException("TEMP");
    }
}
