/**
 * Torus: tensors in native memory, quantization kernels, collectives over Gloo and NCCL,
 * checkpointed recompute, data parallelism, elastic membership, and serving (model files).
 *
 * <p>Only the API packages are exported. The JNI bindings ({@code dev.torus.jni}) are exported to
 * this module alone, and {@code dev.torus.internal} not at all, so that code outside Torus can
 * neither call an entry point that takes a raw address nor obtain the token that unlocks
 * {@code Tensor.dataAddress} and {@code MemoryBuffer.address}.
 *
 * <p>Stores are found through {@link dev.torus.rendezvous.StoreProvider}; the ZooKeeper store
 * ({@code torus-zookeeper}) stays on the class path because ZooKeeper's jars share packages.
 */
module dev.torus {
    requires dev.torus.jni;
    requires org.bytedeco.javacpp;
    requires org.bytedeco.cuda;
    requires org.slf4j;
    // safetensors headers (dev.torus.serve): the streaming parser and generator
    requires com.fasterxml.jackson.core;
    // sun.misc.Signal: SIGTERM as a graceful leave of an elastic member
    requires jdk.unsupported;
    // serving: HTTP (Netty; the JDK client toward replicas), metrics
    requires java.net.http;
    requires io.netty.common;
    requires io.netty.buffer;
    requires io.netty.transport;
    requires io.netty.codec;
    requires io.netty.codec.http;
    requires micrometer.core;
    requires micrometer.registry.prometheus;
    requires HdrHistogram;

    exports dev.torus;
    exports dev.torus.memory;
    exports dev.torus.tensor;
    exports dev.torus.quant;
    exports dev.torus.nn;
    exports dev.torus.recompute;
    exports dev.torus.comm;
    exports dev.torus.parallel;
    exports dev.torus.parallel.pipeline;
    exports dev.torus.parallel.tensor;
    exports dev.torus.rendezvous;
    exports dev.torus.elastic;
    exports dev.torus.serve;

    // the interop module (JCuda views) may read raw addresses, as Torus's own packages do
    exports dev.torus.internal to dev.torus.jcuda;

    uses dev.torus.rendezvous.StoreProvider;
}
