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
 */
package dev.torus.serve;
