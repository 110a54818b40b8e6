/**
 * Serving: model files (safetensors), int8 replicas, batcher, router, autoscaler.
 *
 * <p>{@link dev.torus.serve.Int8Gemm} is the weight-only int8 GEMM an int8 replica's linear layers run on: int8
 * weights as {@link dev.torus.quant.Quantizer} makes them per output channel, fp32 activations and outputs.
 */
package dev.torus.serve;
