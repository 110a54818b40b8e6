package dev.torus.comm;

import dev.torus.rendezvous.JobSecret;
import dev.torus.rendezvous.Store;
import java.time.Duration;
import java.util.Arrays;

/**
 * Everything needed to create one generation of one communicator. {@code members}
 * holds the stable member ids (ranks of the original world) in rank order. {@code secret}
 * (null when the job has none) signs this rank's records and checks its peers'. {@code transport}
 * is the Gloo backend's choice for ranks that share a host.
 */
record CommSpec(StoreLease lease, String runId, String name, long generation, int rank, int[] members,
                Duration timeout, Duration initTimeout, boolean debugChecks, String hostname,
                GlooAlgorithm algorithm, int cudaDevice, JobSecret secret, Transport transport) {

    Store store() {
        return lease.store();
    }

    int size() {
        return members.length;
    }

    /** Keys of this communicator (all generations): {@code runs/<runId>/<name>}. */
    Store namespace() {
        return store().withPrefix("runs/" + runId + "/" + name);
    }

    /** Keys of this generation only. */
    Store generationNamespace() {
        return namespace().withPrefix("gen-" + generation);
    }

    CommSpec next(long newGeneration, int newRank, int[] newMembers) {
        return new CommSpec(lease, runId, name, newGeneration, newRank, newMembers, timeout, initTimeout,
                debugChecks, hostname, algorithm, cudaDevice, secret, transport);
    }

    CommSpec child(String childName, int newRank, int[] newMembers) {
        return new CommSpec(lease, runId, childName, 0, newRank, newMembers, timeout, initTimeout,
                debugChecks, hostname, algorithm, cudaDevice, secret, transport);
    }

    @Override
    public String toString() {
        return "comm '" + name + "' of run '" + runId + "' generation " + generation + " rank " + rank + "/" + size()
                + " members " + Arrays.toString(members);
    }
}
