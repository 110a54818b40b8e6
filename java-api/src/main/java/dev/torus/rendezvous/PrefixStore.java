package dev.torus.rendezvous;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/** A view of a {@link Store} below a key prefix. It does not own the parent; closing it is a no-op. */
final class PrefixStore implements Store {
    private final Store parent;
    private final String prefix;

    PrefixStore(Store parent, String prefix) {
        this.parent = parent;
        this.prefix = Keys.check("prefix", prefix);
    }

    private String k(String key) {
        return prefix + "/" + Keys.check("key", key);
    }

    @Override public void set(String key, byte[] value) { parent.set(k(key), value); }
    @Override public byte[] get(String key, Duration timeout) { return parent.get(k(key), timeout); }
    @Override public byte[] tryGet(String key) { return parent.tryGet(k(key)); }
    @Override public long add(String key, long delta) { return parent.add(k(key), delta); }
    @Override public byte[] compareSet(String key, byte[] expected, byte[] desired) {
        return parent.compareSet(k(key), expected, desired);
    }
    @Override public void wait(List<String> keys, Duration timeout) {
        List<String> full = new ArrayList<>(keys.size());
        for (String key : keys) {
            full.add(k(key));
        }
        parent.wait(full, timeout);
    }
    @Override public boolean delete(String key) { return parent.delete(k(key)); }
    @Override public List<String> list(String key) { return parent.list(k(key)); }
    @Override public void setEphemeral(String key, byte[] value) { parent.setEphemeral(k(key), value); }
    @Override public JobSecret jobSecret() { return parent.jobSecret(); }
    @Override public int maxValueBytes() { return parent.maxValueBytes(); }
    @Override public Store withPrefix(String more) { return new PrefixStore(parent, prefix + "/" + Keys.check("prefix", more)); }
    @Override public void close() {}
    @Override public String toString() { return parent + "/" + prefix; }
}
