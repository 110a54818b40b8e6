package dev.torus.jni;

import org.bytedeco.javacpp.Loader;
import org.bytedeco.javacpp.annotation.Cast;
import org.bytedeco.javacpp.annotation.Platform;

/**
 * JavaCPP binding of the Torus kernel C ABI ({@code kernels/include/torus/torus.h}).
 *
 * <p>Every function returns a status code ({@link #OK} on success); on failure the
 * detail is in {@link #torus_last_error()} on the same thread. Pointers cross the
 * boundary as raw addresses ({@code long}) so that a kernel launch costs one JNI
 * crossing and no allocation. This class is internal: the public API in
 * {@code dev.torus} validates every argument before calling here.
 *
 * <p>Loading the class loads the JNI library from the jar; it loads on machines
 * without a GPU or driver, where CUDA entry points return
 * {@link #ERR_CUDA_UNAVAILABLE}.
 */
@Platform(include = "torus/torus.h", link = {"torus_kernels", "dl", "rt", "pthread"})
public final class TorusNative {
    static {
        Loader.load();
    }

    private TorusNative() {}

    public static final int OK = 0;
    public static final int ERR_INVALID_ARGUMENT = 1;
    public static final int ERR_OUT_OF_MEMORY = 2;
    public static final int ERR_CUDA = 3;
    public static final int ERR_CUDA_UNAVAILABLE = 4;
    public static final int ERR_INTERNAL = 5;

    /** Forces the native library to load; throws {@link UnsatisfiedLinkError} if it cannot. */
    public static void load() {
        // The static initializer did the work.
    }

    public static native @Cast("const char*") String torus_last_error();

    public static native @Cast("const char*") String torus_isa_name();

    public static native int torus_cuda_compiled();

    public static native int torus_cuda_device_count(int[] count);

    public static native int torus_cuda_device_name(int device, @Cast("char*") byte[] buf, int len);

    public static native int torus_cpu_threads();

    public static native int torus_set_cpu_threads(int threads);

    public static native int torus_host_alloc(long bytes, int pinned, @Cast("void**") long[] out);

    public static native int torus_host_free(@Cast("void*") long ptr, int pinned);

    public static native int torus_host_copy(@Cast("void*") long dst, @Cast("const void*") long src, long bytes);

    public static native int torus_host_zero(@Cast("void*") long dst, long bytes);

    public static native int torus_host_stream(@Cast("void*") long dst, long dstBytes, @Cast("const void*") long src,
                                               long srcBytes);

    public static native int torus_f32_add(@Cast("float*") long dst, @Cast("const float*") long a,
                                           @Cast("const float*") long b, long n);

    public static native int torus_f32_sub(@Cast("float*") long dst, @Cast("const float*") long a,
                                           @Cast("const float*") long b, long n);

    public static native int torus_f32_sum_chunks(@Cast("float*") long dst, @Cast("const float*") long src, int ranks,
                                                  long chunk, int divisor);

    public static native int torus_f32_add_on(int device, @Cast("void*") long stream, @Cast("float*") long dst,
                                              @Cast("const float*") long a, @Cast("const float*") long b, long n);

    public static native int torus_f32_sub_on(int device, @Cast("void*") long stream, @Cast("float*") long dst,
                                              @Cast("const float*") long a, @Cast("const float*") long b, long n);

    public static native int torus_f32_sum_chunks_on(int device, @Cast("void*") long stream, @Cast("float*") long dst,
                                                     @Cast("const float*") long src, int ranks, long chunk,
                                                     int divisor);

    public static native int torus_stream_create(int device, @Cast("void**") long[] out);

    public static native int torus_stream_destroy(int device, @Cast("void*") long stream);

    public static native int torus_stream_synchronize(int device, @Cast("void*") long stream);

    public static native int torus_stream_wait_event(int device, @Cast("void*") long stream, @Cast("void*") long event);

    public static native int torus_stream_wait_stream(int device, @Cast("void*") long waiter,
                                                      @Cast("void*") long waitee);

    public static native int torus_event_create(int device, int timing, @Cast("void**") long[] out);

    public static native int torus_event_destroy(int device, @Cast("void*") long event);

    public static native int torus_event_record(int device, @Cast("void*") long event, @Cast("void*") long stream);

    public static native int torus_event_synchronize(int device, @Cast("void*") long event);

    public static native int torus_event_query(int device, @Cast("void*") long event, int[] done);

    public static native int torus_event_elapsed_ms(int device, @Cast("void*") long start, @Cast("void*") long end,
                                                    float[] ms);

    public static native int torus_device_alloc(int device, long bytes, @Cast("void*") long stream,
                                                @Cast("void**") long[] out);

    public static native int torus_device_free(int device, @Cast("void*") long ptr, @Cast("void*") long stream);

    public static native int torus_memcpy_async(int device, @Cast("void*") long dst, @Cast("const void*") long src,
                                                long bytes, @Cast("void*") long stream);

    public static native int torus_memset_async(int device, @Cast("void*") long dst, int value, long bytes,
                                                @Cast("void*") long stream);

    public static native int torus_stats(int device, @Cast("void*") long stream, int inDtype,
                                         @Cast("const void*") long x, long n, long outer, long channels, long inner,
                                         long block, @Cast("float*") long absmax, @Cast("float*") long min,
                                         @Cast("float*") long max);

    public static native int torus_quantize_symmetric(int device, @Cast("void*") long stream, int inDtype,
                                                      @Cast("const void*") long x, long n, long outer, long channels,
                                                      long inner, long block, @Cast("int8_t*") long q,
                                                      @Cast("float*") long scales, int stochastic,
                                                      @Cast("uint64_t") long seed);

    public static native int torus_quantize_affine(int device, @Cast("void*") long stream, int inDtype,
                                                   @Cast("const void*") long x, long n, long outer, long channels,
                                                   long inner, long block, @Cast("const float*") long scales,
                                                   @Cast("const int32_t*") long zeroPoints, int qmin, int qmax,
                                                   int outDtype, @Cast("void*") long q, int stochastic,
                                                   @Cast("uint64_t") long seed);

    public static native int torus_dequantize(int device, @Cast("void*") long stream, int qDtype,
                                              @Cast("const void*") long q, long n, long outer, long channels,
                                              long inner, long block, @Cast("const float*") long scales,
                                              @Cast("const int32_t*") long zeroPoints, int outDtype,
                                              @Cast("void*") long y);

    public static native int torus_cast(int device, @Cast("void*") long stream, int inDtype,
                                        @Cast("const void*") long x, int outDtype, @Cast("void*") long y, long n);

    public static native int torus_bias_gelu_forward(int device, @Cast("void*") long stream, @Cast("const float*") long x,
                                                     @Cast("const float*") long bias, @Cast("float*") long y, long rows,
                                                     long cols);

    public static native int torus_bias_gelu_backward(int device, @Cast("void*") long stream,
                                                      @Cast("const float*") long x, @Cast("const float*") long bias,
                                                      @Cast("const float*") long dy, @Cast("float*") long dx,
                                                      @Cast("float*") long dbias, long rows, long cols);

    public static native int torus_dropout(int device, @Cast("void*") long stream, @Cast("const float*") long x,
                                           @Cast("float*") long y, long n, float p, @Cast("uint64_t") long seed,
                                           @Cast("uint64_t") long offset);

    public static native int torus_layernorm_forward(int device, @Cast("void*") long stream, @Cast("const float*") long x,
                                                     @Cast("const float*") long gamma, @Cast("const float*") long beta,
                                                     @Cast("float*") long y, @Cast("float*") long mean,
                                                     @Cast("float*") long rstd, long rows, long cols, float eps);

    public static native int torus_layernorm_backward(int device, @Cast("void*") long stream,
                                                      @Cast("const float*") long x, @Cast("const float*") long gamma,
                                                      @Cast("const float*") long dy, @Cast("float*") long dx,
                                                      @Cast("float*") long dgamma, @Cast("float*") long dbeta,
                                                      @Cast("float*") long scratch, long rows, long cols, float eps);

    public static native int torus_relu_forward(int device, @Cast("void*") long stream, @Cast("const float*") long x,
                                                @Cast("float*") long y, long n);

    public static native int torus_relu_backward(int device, @Cast("void*") long stream, @Cast("const float*") long x,
                                                 @Cast("const float*") long dy, @Cast("float*") long dx, long n);

    public static native int torus_bias_add(int device, @Cast("void*") long stream, @Cast("float*") long y,
                                            @Cast("const float*") long bias, long rows, long cols);

    public static native int torus_column_sum(int device, @Cast("void*") long stream, @Cast("const float*") long v,
                                              @Cast("float*") long out, long rows, long cols, int accumulate);

    public static native int torus_axpy(int device, @Cast("void*") long stream, float alpha,
                                        @Cast("const float*") long x, @Cast("float*") long y, long n);

    public static native int torus_softmax_xent(int device, @Cast("void*") long stream, @Cast("const float*") long x,
                                                @Cast("const int32_t*") long labels, @Cast("float*") long loss,
                                                @Cast("float*") long dx, long rows, long cols, float gradScale);

    public static native int torus_sgd_step(int device, @Cast("void*") long stream, @Cast("float*") long param,
                                            @Cast("const float*") long grad, @Cast("float*") long buf, long n,
                                            float lr, float momentum, float weightDecay, int nesterov, int first);

    public static native int torus_adamw_step(int device, @Cast("void*") long stream, @Cast("float*") long param,
                                              @Cast("const float*") long grad, @Cast("float*") long m,
                                              @Cast("float*") long v, long n, float lr, float beta1, float beta2,
                                              float eps, float weightDecay, float bc1, float bc2);

    /** Weight-only int8 GEMM: {@code y = (x q^T) * scale (+ bias)}; bias may be 0 (none). See torus.h. */
    public static native int torus_int8_gemm(int device, @Cast("void*") long stream, @Cast("const float*") long x,
                                             @Cast("const int8_t*") long q, @Cast("const float*") long scale,
                                             @Cast("const float*") long bias, @Cast("float*") long y, long m, long n,
                                             long k);
}
