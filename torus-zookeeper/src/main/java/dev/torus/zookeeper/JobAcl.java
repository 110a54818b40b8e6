package dev.torus.zookeeper;

import dev.torus.rendezvous.JobSecret;

import java.util.List;
import java.util.Set;
import org.apache.curator.framework.api.ACLProvider;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.data.ACL;
import org.apache.zookeeper.data.Id;

/**
 * The ACLs of a job's keys: every znode the job creates belongs to its digest
 * credential alone (all permissions), except the shared parents that every job
 * creates below ({@code /torus}, {@code /torus/<root>}, {@code /torus/<root>/runs} and
 * {@code /torus/<root>/index}),
 * which anyone may add children to and remove empty children from, but nobody
 * outside an administrator may read or list: the run ids of other jobs stay hidden.
 */
final class JobAcl implements ACLProvider {
    // not List.of: ZooKeeper's client asks the list whether it contains null
    private static final List<ACL> SHARED = java.util.Collections.unmodifiableList(java.util.Arrays.asList(
            new ACL(ZooDefs.Perms.CREATE | ZooDefs.Perms.DELETE, ZooDefs.Ids.ANYONE_ID_UNSAFE)));

    private final List<ACL> job;
    private final Set<String> shared;

    JobAcl(JobSecret secret, String namespace, String root) {
        this.job = java.util.Collections.unmodifiableList(java.util.Arrays.asList(
                new ACL(ZooDefs.Perms.ALL, new Id("digest", secret.digestAclId()))));
        java.util.HashSet<String> s = new java.util.HashSet<>();
        String p = "/" + namespace;
        s.add(p);
        for (String seg : root.split("/")) {
            p = p + "/" + seg;
            s.add(p);
        }
        s.add(p + "/runs");
        s.add(p + "/index");
        this.shared = Set.copyOf(s);
    }

    @Override
    public List<ACL> getDefaultAcl() {
        return job;
    }

    @Override
    public List<ACL> getAclForPath(String path) {
        return shared.contains(path) ? SHARED : job;
    }
}
