package dev.torus.zookeeper;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import dev.torus.serve.ReplicaRegistry;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.cache.ChildData;
import org.apache.curator.framework.recipes.cache.CuratorCache;
import org.apache.curator.framework.recipes.nodes.PersistentNode;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Replica discovery on ZooKeeper. Layout under {@code /torus/serve/<service>}:
 * {@code replicas/<id>} is an ephemeral node holding {@code {"endpoint": "...", "pid": N, "model": digest}}
 * (JSON), kept by
 * Curator's {@link PersistentNode}, so that it is made again after a session loss or a ZooKeeper restart;
 * {@code stop/<id>} is a persistent marker asking replica {@code id} to drain and exit. Entries that do not
 * parse are skipped with a warning, never trusted. Owns its Curator client; {@link #close()} closes it
 * (and with it every registration made through it).
 */
public final class ZooKeeperReplicaRegistry implements ReplicaRegistry {
    private static final Logger LOG = LoggerFactory.getLogger(ZooKeeperReplicaRegistry.class);
    private static final JsonFactory JSON = new JsonFactory();

    private final CuratorFramework client;
    private final String base;

    private ZooKeeperReplicaRegistry(CuratorFramework client, String base) {
        this.client = client;
        this.base = base;
    }

    /**
     * Connects to {@code connectString} for service {@code service} (the model name).
     *
     * @param sessionTimeout how long a dead replica stays registered at most
     * @throws IllegalArgumentException for a bad argument, or when ZooKeeper is not reachable within
     *         {@code connectTimeout} (the message names the address)
     */
    public static ZooKeeperReplicaRegistry connect(String connectString, String service, Duration connectTimeout,
                                                   Duration sessionTimeout) {
        if (connectString == null || connectString.isBlank()) {
            throw new IllegalArgumentException("connectString must be host:port[,host:port...], got '" + connectString + "'");
        }
        if (service == null || !service.matches("[A-Za-z0-9_.-]{1,128}")) {
            throw new IllegalArgumentException("service must be 1-128 characters of [A-Za-z0-9_.-], got '" + service + "'");
        }
        CuratorFramework c = CuratorFrameworkFactory.builder().connectString(connectString)
                .sessionTimeoutMs((int) sessionTimeout.toMillis())
                .connectionTimeoutMs((int) connectTimeout.toMillis())
                .retryPolicy(new ExponentialBackoffRetry(50, 10, 1000)).build();
        c.start();
        try {
            if (!c.blockUntilConnected((int) connectTimeout.toMillis(), TimeUnit.MILLISECONDS)) {
                c.close();
                throw new IllegalArgumentException("cannot reach ZooKeeper at '" + connectString + "' within "
                        + connectTimeout.toMillis() + " ms");
            }
        } catch (InterruptedException e) {
            c.close();
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while connecting to ZooKeeper", e);
        }
        return new ZooKeeperReplicaRegistry(c, "/torus/serve/" + service);
    }

    /** Whether the client is connected now. */
    public boolean connected() {
        return client.getZookeeperClient().isConnected();
    }

    @Override
    public AutoCloseable register(Entry entry) {
        PersistentNode node = new PersistentNode(client, CreateMode.EPHEMERAL, false, base + "/replicas/" + entry.id(),
                encode(entry));
        node.start();
        try {
            if (!node.waitForInitialCreate(10, TimeUnit.SECONDS)) {
                closeQuietly(node);
                throw new IllegalStateException("could not register replica " + entry.id() + " within 10 s");
            }
        } catch (InterruptedException e) {
            closeQuietly(node);
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while registering replica " + entry.id(), e);
        }
        return () -> closeQuietly(node);
    }

    @Override
    public AutoCloseable watch(Consumer<List<Entry>> onChange) {
        String dir = base + "/replicas";
        try {
            client.createContainers(dir);
        } catch (Exception e) {
            throw new IllegalStateException("cannot create " + dir + " in ZooKeeper: " + e.getMessage(), e);
        }
        CuratorCache cache = CuratorCache.build(client, dir);
        Runnable publish = () -> {
            List<Entry> entries = new ArrayList<>();
            cache.stream().filter(d -> !d.getPath().equals(dir) && d.getPath().startsWith(dir + "/"))
                    .sorted(Comparator.comparing(ChildData::getPath)).forEach(d -> {
                        Entry e = decode(d.getPath().substring(dir.length() + 1), d.getData());
                        if (e != null) {
                            entries.add(e);
                        }
                    });
            onChange.accept(entries);
        };
        cache.listenable().addListener((type, oldData, data) -> publish.run());
        cache.start();
        publish.run();
        return cache::close;
    }

    @Override
    public void requestStop(String id) {
        try {
            client.create().orSetData().creatingParentContainersIfNeeded().forPath(base + "/stop/" + id, new byte[0]);
        } catch (Exception e) {
            throw new IllegalStateException("cannot ask replica " + id + " to stop: " + e.getMessage(), e);
        }
    }

    @Override
    public boolean stopRequested(String id) {
        try {
            return client.checkExists().forPath(base + "/stop/" + id) != null;
        } catch (Exception e) {
            throw new IllegalStateException("cannot read the stop marker of replica " + id + ": " + e.getMessage(), e);
        }
    }

    /** Removes the stop marker of {@code id} (after it exited). */
    public void clearStop(String id) {
        try {
            client.delete().quietly().forPath(base + "/stop/" + id);
        } catch (KeeperException.NoNodeException ignored) {
            // already gone
        } catch (Exception e) {
            LOG.debug("clearing the stop marker of {}: {}", id, e.toString());
        }
    }

    static byte[] encode(Entry e) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (JsonGenerator g = JSON.createGenerator(out)) {
            g.writeStartObject();
            g.writeStringField("endpoint", e.endpoint());
            g.writeNumberField("pid", e.pid());
            g.writeStringField("model", e.model());
            g.writeEndObject();
        } catch (IOException ex) {
            throw new IllegalStateException(ex);
        }
        return out.toByteArray();
    }

    /** Entries already warned about (id and content), so that a bad entry is logged once, not at every change. */
    private static final java.util.Set<String> WARNED = java.util.concurrent.ConcurrentHashMap.newKeySet();

    private static void warnOnce(String id, byte[] data, String why) {
        if (WARNED.size() > 10_000) {
            WARNED.clear();
        }
        if (WARNED.add(id + ":" + java.util.Arrays.hashCode(data))) {
            LOG.warn("ignoring replica entry {}: {}", id, why);
        }
    }

    static Entry decode(String id, byte[] data) {
        if (data == null || data.length == 0 || data.length > 4096) {
            warnOnce(id, data, (data == null ? 0 : data.length) + " bytes of data");
            return null;
        }
        try (JsonParser p = JSON.createParser(data)) {
            String endpoint = null;
            String model = null;
            long pid = -1;
            if (p.nextToken() != JsonToken.START_OBJECT) {
                throw new IOException("not a JSON object");
            }
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String f = p.currentName();
                JsonToken t = p.nextToken();
                if (f.equals("endpoint") && t == JsonToken.VALUE_STRING) {
                    endpoint = p.getText();
                } else if (f.equals("model") && t == JsonToken.VALUE_STRING) {
                    model = p.getText();
                } else if (f.equals("pid") && t == JsonToken.VALUE_NUMBER_INT) {
                    pid = p.getLongValue();
                } else {
                    p.skipChildren();
                }
            }
            return new Entry(id, endpoint, pid, model);
        } catch (IOException | IllegalArgumentException ex) {
            warnOnce(id, data, ex.getMessage());
            return null;
        }
    }

    private static void closeQuietly(PersistentNode n) {
        try {
            n.close();
        } catch (IOException | RuntimeException e) {
            LOG.debug("closing a registration: {}", e.toString());
        }
    }

    @Override
    public void close() {
        client.close();
    }
}
