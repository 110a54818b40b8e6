package dev.torus.comm;

import dev.torus.rendezvous.JobSecret;
import dev.torus.rendezvous.Store;
import dev.torus.rendezvous.Stores;
import java.time.Duration;
import java.util.Map;

/**
 * Configures and creates a {@link Communicator}. Required: rank, size, and a store
 * (either {@link #store(Store)}, which the caller keeps owning, or
 * {@link #endpoint(String)}, whose connection the communicator opens and owns).
 */
public final class CommunicatorBuilder {
    static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(120);

    int rank = -1;
    int size = -1;
    Store store;
    String endpoint;
    String runId = "default";
    String name = "world";
    long generation = 0;
    Backend backend = Backend.GLOO;
    /** The smallest default init timeout (see {@link #initTimeout}). */
    public static final Duration DEFAULT_MIN_INIT_TIMEOUT = Duration.ofSeconds(60);
    Duration timeout = DEFAULT_TIMEOUT;
    Duration initTimeout;
    boolean debugChecks;
    String hostname = "127.0.0.1";
    GlooAlgorithm algorithm = GlooAlgorithm.AUTO;
    int cudaDevice = -1;
    JobSecret secret;
    Transport transport = Transport.AUTO;

    CommunicatorBuilder() {}

    static CommunicatorBuilder fromEnvironment(Map<String, String> env) {
        CommunicatorBuilder b = new CommunicatorBuilder();
        b.rank(parseInt(env, "RANK", null));
        b.size(parseInt(env, "WORLD_SIZE", null));
        String ep = env.get("TORUS_RDZV_ENDPOINT");
        if (ep == null || ep.isBlank()) {
            throw new IllegalArgumentException("environment variable TORUS_RDZV_ENDPOINT must name a ZooKeeper connect "
                    + "string like '127.0.0.1:2181' (torusrun sets it, and starts an embedded server when none is given)");
        }
        b.endpoint(ep);
        JobSecret js = JobSecret.fromEnvironment(env);
        if (js != null) {
            b.jobSecret(js);
        }
        String run = env.get("TORUS_RUN_ID");
        if (run != null && !run.isBlank()) {
            // a restarted job meets in a fresh namespace, so nothing of the failed attempt can interfere
            int restart = parseInt(env, "TORUS_RESTART_COUNT", 0);
            if (restart < 0) {
                throw new IllegalArgumentException("environment variable TORUS_RESTART_COUNT must be >= 0, got " + restart);
            }
            b.runId(restart == 0 ? run : run + "-restart" + restart);
        }
        String be = env.get("TORUS_BACKEND");
        if (be != null && !be.isBlank()) {
            b.backend(Backend.parse("TORUS_BACKEND", be));
        }
        String it = env.get("TORUS_COMM_INIT_TIMEOUT_MS");
        if (it != null && !it.isBlank()) {
            b.initTimeout(Duration.ofMillis(parseInt(env, "TORUS_COMM_INIT_TIMEOUT_MS", null)));
        }
        String t = env.get("TORUS_COMM_TIMEOUT_MS");
        if (t != null && !t.isBlank()) {
            b.timeout(Duration.ofMillis(parseInt(env, "TORUS_COMM_TIMEOUT_MS", null)));
        }
        b.debugChecks("1".equals(env.get("TORUS_COMM_DEBUG")));
        String host = env.get("TORUS_GLOO_HOSTNAME");
        if (host != null && !host.isBlank()) {
            b.hostname = ListenAddress.resolve("TORUS_GLOO_HOSTNAME", host);
        }
        String algo = env.get("TORUS_GLOO_ALGORITHM");
        if (algo != null && !algo.isBlank()) {
            b.glooAlgorithm(switch (algo.trim().toLowerCase()) {
                case "auto" -> GlooAlgorithm.AUTO;
                case "ring" -> GlooAlgorithm.RING;
                case "bcube" -> GlooAlgorithm.BCUBE;
                case "hd", "halving_doubling", "halving-doubling" -> GlooAlgorithm.HALVING_DOUBLING;
                default -> throw new IllegalArgumentException("TORUS_GLOO_ALGORITHM must be auto, ring, bcube or hd, got '"
                        + algo + "'");
            });
        }
        String tr = env.get("TORUS_TRANSPORT");
        if (tr != null && !tr.isBlank()) {
            b.transport(Transport.parse("environment variable TORUS_TRANSPORT", tr));
        }
        String local = env.get("LOCAL_RANK");
        if (b.backend == Backend.NCCL && local != null && !local.isBlank()) {
            b.cudaDevice(parseInt(env, "LOCAL_RANK", null));
        }
        return b;
    }

    private static int parseInt(Map<String, String> env, String var, Integer dflt) {
        String v = env.get(var);
        if (v == null || v.isBlank()) {
            if (dflt != null) {
                return dflt;
            }
            throw new IllegalArgumentException("environment variable " + var + " must be set to an integer");
        }
        try {
            return Integer.parseInt(v.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("environment variable " + var + " must be an integer, got '" + v + "'");
        }
    }

    public CommunicatorBuilder rank(int rank) {
        if (rank < 0) {
            throw new IllegalArgumentException("rank must be >= 0, got " + rank);
        }
        this.rank = rank;
        return this;
    }

    public CommunicatorBuilder size(int size) {
        if (size < 1) {
            throw new IllegalArgumentException("size must be >= 1, got " + size);
        }
        this.size = size;
        return this;
    }

    /**
     * The job's secret: the store connection this builder opens authenticates with it, and
     * every rank record carries an HMAC proof of it that the other ranks check. Taken from
     * the store when it has one ({@link dev.torus.rendezvous.Store#jobSecret()}); {@link Communicator#fromEnv}
     * reads it from {@value JobSecret#ENV}.
     */
    public CommunicatorBuilder jobSecret(JobSecret secret) {
        if (secret == null) {
            throw new IllegalArgumentException("secret must not be null");
        }
        this.secret = secret;
        return this;
    }

    /** A store the caller owns and closes after the communicator. */
    public CommunicatorBuilder store(Store store) {
        if (store == null) {
            throw new IllegalArgumentException("store must not be null");
        }
        this.store = store;
        return this;
    }

    /** A ZooKeeper connect string; the communicator opens the connection and closes it on close. */
    public CommunicatorBuilder endpoint(String connectString) {
        if (connectString == null || connectString.isBlank()) {
            throw new IllegalArgumentException("endpoint must be a ZooKeeper connect string like 'host:2181', got '"
                    + connectString + "'");
        }
        this.endpoint = connectString;
        return this;
    }

    /** Namespaces every key of this job in the store. */
    public CommunicatorBuilder runId(String runId) {
        if (runId == null || !runId.matches("[A-Za-z0-9._-]{1,100}") || runId.equals(".") || runId.equals("..")) {
            throw new IllegalArgumentException("runId must be 1-100 characters of [A-Za-z0-9._-], got '" + runId + "'");
        }
        this.runId = runId;
        return this;
    }

    /** The communicator's name within the run (default {@code world}). */
    public CommunicatorBuilder name(String name) {
        if (name == null || !name.matches("[A-Za-z0-9._-]{1,100}(/[A-Za-z0-9._-]{1,100})*")
                || java.util.Arrays.asList(name.split("/")).stream().anyMatch(seg -> seg.equals(".") || seg.equals(".."))) {
            throw new IllegalArgumentException("name must be a '/'-separated path of [A-Za-z0-9._-] segments other than"
                    + " '.' and '..', got '" + name + "'");
        }
        this.name = name;
        return this;
    }

    /**
     * The generation to create. Creation fails with {@link StaleGenerationException}
     * if the run has already reached a later generation of this communicator.
     */
    public CommunicatorBuilder generation(long generation) {
        if (generation < 0) {
            throw new IllegalArgumentException("generation must be >= 0, got " + generation);
        }
        this.generation = generation;
        return this;
    }

    public CommunicatorBuilder backend(Backend backend) {
        if (backend == null) {
            throw new IllegalArgumentException("backend must not be null");
        }
        this.backend = backend;
        return this;
    }

    /** Default per-operation timeout (default 120 s). */
    public CommunicatorBuilder timeout(Duration timeout) {
        if (timeout == null || timeout.isNegative() || timeout.isZero()) {
            throw new IllegalArgumentException("timeout must be a positive duration, got " + timeout);
        }
        this.timeout = timeout;
        return this;
    }

    /**
     * Bound on the whole of initialization: store connection, rendezvous (which waits for
     * the slowest peer to start) and the transport's connect. Default: the operation
     * timeout, but at least {@link #DEFAULT_MIN_INIT_TIMEOUT}, so that a short op timeout
     * does not also cut short the wait for peers that are still starting.
     */
    public CommunicatorBuilder initTimeout(Duration timeout) {
        if (timeout == null || timeout.isNegative() || timeout.isZero()) {
            throw new IllegalArgumentException("initTimeout must be a positive duration, got " + timeout);
        }
        this.initTimeout = timeout;
        return this;
    }

    /** Checks a fingerprint (op, dtype, count, root, seq) of each collective across ranks before running it. */
    public CommunicatorBuilder debugChecks(boolean on) {
        this.debugChecks = on;
        return this;
    }

    /**
     * Address Gloo listens on (default loopback); use the host's address for multi-node jobs.
     * It must resolve to an address of a local interface; it is resolved here, once.
     */
    public CommunicatorBuilder hostname(String hostname) {
        this.hostname = ListenAddress.resolve("hostname", hostname);
        return this;
    }

    /** Gloo all-reduce algorithm (default AUTO, chosen by size). */
    public CommunicatorBuilder glooAlgorithm(GlooAlgorithm algorithm) {
        if (algorithm == null) {
            throw new IllegalArgumentException("algorithm must not be null");
        }
        this.algorithm = algorithm;
        return this;
    }

    /**
     * How ranks on one host exchange data under the Gloo backend (default {@link Transport#AUTO}:
     * shared memory when it can be set up, else TCP). Taken from {@code TORUS_TRANSPORT} by
     * {@code fromEnvironment}.
     */
    public CommunicatorBuilder transport(Transport transport) {
        if (transport == null) {
            throw new IllegalArgumentException("transport must not be null (auto, shm or gloo)");
        }
        this.transport = transport;
        return this;
    }

    /** CUDA device for the NCCL backend (default: {@code LOCAL_RANK}, else the rank when the world fits on this node). */
    public CommunicatorBuilder cudaDevice(int ordinal) {
        if (ordinal < 0) {
            throw new IllegalArgumentException("cudaDevice must be >= 0, got " + ordinal);
        }
        this.cudaDevice = ordinal;
        return this;
    }

    public Communicator build() {
        if (rank < 0 || size < 1) {
            throw new IllegalArgumentException("rank and size must be set (got rank " + rank + ", size " + size + ")");
        }
        if (rank >= size) {
            throw new IllegalArgumentException("rank must be < size " + size + ", got " + rank);
        }
        if (store == null && endpoint == null) {
            throw new IllegalArgumentException("a store or an endpoint must be set");
        }
        Duration init = initTimeout != null ? initTimeout
                : timeout.compareTo(DEFAULT_MIN_INIT_TIMEOUT) > 0 ? timeout : DEFAULT_MIN_INIT_TIMEOUT;
        // one deadline for everything: the store connection, the rendezvous and the transport's connect
        long deadline = System.nanoTime() + init.toNanos();
        Store s = store;
        JobSecret js = secret;
        if (s != null && s.jobSecret() != null) {
            if (js != null && !js.equals(s.jobSecret())) {
                throw new IllegalArgumentException("jobSecret (" + js + ") differs from the secret the store authenticates "
                        + "with (" + s.jobSecret() + "); give one secret, or none to use the store's");
            }
            js = s.jobSecret();
        }
        boolean ownsStore = false;
        if (s == null) {
            s = Stores.open(endpoint, "store", Rendezvous.remaining(deadline), js);
            ownsStore = true;
        }
        try {
            int[] members = new int[size];
            for (int i = 0; i < size; i++) {
                members[i] = i;
            }
            CommSpec spec = new CommSpec(new StoreLease(s, ownsStore), runId, name, generation, rank, members, timeout, init,
                    debugChecks, hostname, algorithm, cudaDevice, js, transport);
            return backend == Backend.GLOO ? GlooCommunicator.create(spec, deadline)
                    : NcclCommunicator.create(spec, deadline);
        } catch (RuntimeException e) {
            if (ownsStore) {
                s.close();
            }
            throw e;
        }
    }
}
