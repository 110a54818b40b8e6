package dev.torus.rendezvous;

import java.time.Duration;
import java.util.List;

/**
 * A small key-value store that workers use to find each other: the rendezvous
 * for communicators and the membership record for elastic jobs.
 *
 * <p>Keys are {@code /}-separated paths of segments made of {@code [A-Za-z0-9._-]}.
 * Values are opaque bytes of at most {@link #maxValueBytes()}; the store never
 * interprets them except for {@link #add}, whose counters are ASCII decimal.
 * Nothing is ever deserialized into Java objects.
 *
 * <p>Every blocking call takes a timeout and throws {@link StoreTimeoutException}
 * when it runs out. The store is thread-safe. Whoever creates a store closes it;
 * views made by {@link #withPrefix} share the parent's connection and closing a
 * view does nothing.
 */
public interface Store extends AutoCloseable {

    /** Sets {@code key} to {@code value}, creating it if needed. */
    void set(String key, byte[] value);

    /** Waits up to {@code timeout} for {@code key} to exist, then returns its value. */
    byte[] get(String key, Duration timeout);

    /** Returns the value of {@code key}, or {@code null} if it does not exist. Never blocks on absence. */
    byte[] tryGet(String key);

    /**
     * Atomically adds {@code delta} to the counter at {@code key} (absent counts as 0)
     * and returns the new value. Throws {@link StoreException} if the key holds something
     * other than an ASCII decimal counter.
     */
    long add(String key, long delta);

    /**
     * Atomically replaces the value of {@code key} with {@code desired} if it currently
     * equals {@code expected}; {@code expected == null} means "only if the key is absent".
     * Returns the value stored after the call (the desired one on success, the current
     * one otherwise).
     */
    byte[] compareSet(String key, byte[] expected, byte[] desired);

    /** Waits until every key exists; throws {@link StoreTimeoutException} naming the missing ones. */
    void wait(List<String> keys, Duration timeout);

    /** Deletes {@code key} and everything below it; returns whether it existed. */
    boolean delete(String key);

    /** Lists the direct children of {@code key} (empty if it has none or does not exist). */
    List<String> list(String key);

    /** Largest value accepted by {@link #set} and {@link #compareSet}. */
    int maxValueBytes();

    /**
     * Sets {@code key} to {@code value} for as long as this store's session lives: the key
     * disappears by itself when the process holding the session dies or loses it. Elastic
     * membership needs this; a store that cannot do it throws {@link UnsupportedOperationException}.
     */
    default void setEphemeral(String key, byte[] value) {
        throw new UnsupportedOperationException(getClass().getSimpleName() + " has no session-bound keys; "
                + "elastic membership needs a store that has them (the ZooKeeper store does)");
    }

    /**
     * The job secret this store authenticates with, or {@code null} for a store without one.
     * Communicators built over the store sign their rendezvous records with it.
     */
    default JobSecret jobSecret() {
        return null;
    }

    /** A view whose keys are resolved below {@code prefix}. Closing the view is a no-op. */
    default Store withPrefix(String prefix) {
        return new PrefixStore(this, prefix);
    }

    @Override
    void close();
}
