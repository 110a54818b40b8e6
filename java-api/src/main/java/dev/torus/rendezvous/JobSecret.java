package dev.torus.rendezvous;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.util.HexFormat;
import java.util.Map;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * The secret a job's processes share: 32 random bytes that admit a process to the job's
 * keys in the store and prove that a rank record was written by a member of the job.
 *
 * <p>{@code torusrun} makes one per run and hands it to its workers in the environment
 * variable {@value #ENV} (64 hex digits), never on a command line or in a log. From it
 * derive, each with HMAC-SHA256 under its own label: the ZooKeeper digest credential
 * ({@link #digestAuth()}, user {@value #DIGEST_USER}), the ACL id that owns the job's
 * keys ({@link #digestAclId()}), and the proof carried by each rank record
 * ({@link #mac}). The raw key leaves this object only through {@link #toHex()}, for
 * the environment of the job's own workers; {@link #toString()} shows a short
 * fingerprint. Immutable and thread-safe.
 */
public final class JobSecret {
    /** The environment variable through which a launcher hands the secret to its workers. */
    public static final String ENV = "TORUS_JOB_SECRET";
    /** The user name of the job's ZooKeeper digest credential. */
    public static final String DIGEST_USER = "torus-job";
    static final int BYTES = 32;
    private static final SecureRandom RANDOM = new SecureRandom();

    private final byte[] key;

    private JobSecret(byte[] key) {
        this.key = key;
    }

    /** A fresh secret from the system's secure random source. */
    public static JobSecret generate() {
        byte[] k = new byte[BYTES];
        RANDOM.nextBytes(k);
        return new JobSecret(k);
    }

    /** Parses 64 hex digits (32 bytes); {@code argName} names the source in the error. */
    public static JobSecret fromHex(String argName, String hex) {
        if (hex == null) {
            throw new IllegalArgumentException(argName + " must be set to a job secret of " + 2 * BYTES + " hex digits");
        }
        String h = hex.trim();
        if (h.length() != 2 * BYTES || !h.matches("[0-9a-fA-F]+")) {
            // the value itself is never echoed: it may be a real secret with a typo
            throw new IllegalArgumentException(argName + " must be a job secret of " + 2 * BYTES + " hex digits, got "
                    + h.length() + " characters" + (h.matches("[0-9a-fA-F]*") ? "" : " that are not all hex digits"));
        }
        return new JobSecret(HexFormat.of().parseHex(h));
    }

    /** The secret in {@value #ENV}, or null when the variable is unset or blank. */
    public static JobSecret fromEnvironment(Map<String, String> env) {
        String v = env.get(ENV);
        return v == null || v.isBlank() ? null : fromHex("environment variable " + ENV, v);
    }

    /** The raw secret as 64 hex digits: for the environment of the job's own workers only. */
    public String toHex() {
        return HexFormat.of().formatHex(key);
    }

    /** {@code user:password} for ZooKeeper's digest scheme; the password is derived, not the key. */
    public byte[] digestAuth() {
        return (DIGEST_USER + ":" + derived("zookeeper-digest-password")).getBytes(StandardCharsets.US_ASCII);
    }

    /** The id of the job's digest credential as a ZooKeeper ACL names it: {@code user:base64(sha1(user:password))}. */
    public String digestAclId() {
        try {
            byte[] sha1 = MessageDigest.getInstance("SHA-1").digest(digestAuth());
            return DIGEST_USER + ":" + java.util.Base64.getEncoder().encodeToString(sha1);
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("SHA-1 is not available in this JVM", e);
        }
    }

    /** HMAC-SHA256 of the parts, each length-prefixed so that no two lists of parts collide. */
    public byte[] mac(byte[]... parts) {
        Mac m = hmac();
        ByteBuffer len = ByteBuffer.allocate(4);
        for (byte[] p : parts) {
            len.clear();
            m.update(len.putInt(p.length).array());
            m.update(p);
        }
        return m.doFinal();
    }

    /** Whether {@code mac} is the {@link #mac} of the parts (compared in constant time). */
    public boolean verify(byte[] mac, byte[]... parts) {
        return mac != null && MessageDigest.isEqual(mac, mac(parts));
    }

    /** A short public fingerprint of the secret (not reversible), for messages. */
    public String fingerprint() {
        return derived("fingerprint").substring(0, 12);
    }

    private String derived(String label) {
        return HexFormat.of().formatHex(mac(label.getBytes(StandardCharsets.US_ASCII)));
    }

    private Mac hmac() {
        try {
            Mac m = Mac.getInstance("HmacSHA256");
            m.init(new SecretKeySpec(key, "HmacSHA256"));
            return m;
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("HmacSHA256 is not available in this JVM", e);
        }
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof JobSecret s && MessageDigest.isEqual(key, s.key);
    }

    @Override
    public int hashCode() {
        return fingerprint().hashCode();
    }

    @Override
    public String toString() {
        return "JobSecret[" + fingerprint() + "]";
    }
}
