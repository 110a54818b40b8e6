package dev.torus.elastic;

import dev.torus.testing.ElasticWorker;

/**
 * {@link ElasticWorker}, dying on purpose at a protocol point: ELASTIC_HALT_AT = {@code POINT:N}
 * halts the process (as abruptly as kill -9: no shutdown hooks, sockets closed by the kernel) at
 * the N-th time it reaches POINT, "rebuild" (a new generation agreed, its communicator not yet
 * formed) or "sync" (a state transfer starting).
 */
public final class FaultInjectingWorker {
    private FaultInjectingWorker() {}

    public static void main(String[] args) throws Exception {
        String spec = System.getenv("ELASTIC_HALT_AT");
        if (spec != null) {
            String point = spec.substring(0, spec.indexOf(':'));
            int nth = Integer.parseInt(spec.substring(spec.indexOf(':') + 1));
            int[] seen = {0};
            ElasticGroup.faultPoint = p -> {
                if (p.equals(point) && ++seen[0] == nth) {
                    System.out.println("HALT at " + p + " " + nth);
                    System.out.flush();
                    Runtime.getRuntime().halt(137);
                }
            };
        }
        ElasticWorker.main(args);
    }
}
