/**
 * Serving: model files (safetensors), int8 replicas, batcher, router (Open Inference
 * Protocol), autoscaler.
 *
 * <p>Model files use the safetensors layout, the ecosystem's standard, so PyTorch and the
 * Python {@code safetensors} package read what Torus writes: {@link dev.torus.serve.SafeTensors}
 * writes and opens them, {@link dev.torus.serve.SafeTensorsFile} reads tensors out of an open
 * file, and {@link dev.torus.serve.MlpModelFile} saves, loads and quantizes the parameters of a
 * {@link dev.torus.nn.Mlp}. A file that breaks the format is refused with a
 * {@link dev.torus.serve.ModelFileException} naming the file and the problem.
 *
 * <p>{@link dev.torus.serve.Int8Gemm} is the weight-only int8 GEMM that {@link dev.torus.serve.Int8Linear} and
 * {@link dev.torus.serve.Int8Mlp} run on: int8 weights as {@link dev.torus.quant.Quantizer} makes them per output
 * channel, fp32 activations and outputs. A replica ({@link dev.torus.serve.ReplicaServer}) runs batches of a
 * {@link dev.torus.serve.BatchModel}; the router side is {@link dev.torus.serve.InferenceRouter} (HTTP),
 * {@link dev.torus.serve.DynamicBatcher}, {@link dev.torus.serve.ReplicaSet}, {@link dev.torus.serve.ReplicaPool}
 * and {@link dev.torus.serve.Autoscaler}; replicas are found through a {@link dev.torus.serve.ReplicaRegistry}.
 */
package dev.torus.serve;
