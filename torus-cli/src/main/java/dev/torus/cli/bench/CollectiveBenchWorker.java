package dev.torus.cli.bench;

import dev.torus.DType;
import dev.torus.Device;
import dev.torus.tensor.Tensor;
import dev.torus.comm.Backend;
import dev.torus.comm.Communicator;
import dev.torus.comm.Compression;
import dev.torus.comm.CompressedAllReduce;
import dev.torus.comm.OpOptions;
import dev.torus.comm.ReduceOp;
import dev.torus.memory.Allocator;
import java.nio.ByteBuffer;
import java.util.Arrays;

/**
 * One rank of {@code torus-bench <collective>}: joins with {@link Communicator#fromEnv()},
 * sweeps sizes with the same timing rules as the native baseline, and (on rank 0)
 * prints one JSON object per size: the slowest rank's mean time per operation,
 * best of three trials (the native baseline uses the same rule). Launched by
 * {@link CollectiveBench}.
 *
 * <p>args: OP MIN_BYTES MAX_BYTES MIN_TIME_S COMPRESSION(none|fp16|bf16|int8)
 */
public final class CollectiveBenchWorker {
    private CollectiveBenchWorker() {}

    public static void main(String[] args) throws Exception {
        String op = args[0];
        long minBytes = Long.parseLong(args[1]);
        long maxBytes = Long.parseLong(args[2]);
        double minTime = Double.parseDouble(args[3]);
        String compression = args[4];
        long t0 = System.nanoTime();
        try (Allocator alloc = Allocator.root("bench");
             Communicator comm = Communicator.fromEnv()) {
            double createMs = (System.nanoTime() - t0) / 1e6;
            if (comm.rank() == 0) {
                System.out.println("{\"kind\":\"setup\",\"create_ms\":" + createMs + "}");
            }
            int n = comm.size();
            Device dev = comm.backend() == Backend.NCCL
                    ? Device.cuda(comm.rank() % Device.cudaDeviceCount()) : Device.cpu();
            CompressedAllReduce car = compression.equals("none") ? null : new CompressedAllReduce(comm, switch (compression) {
                case "fp16" -> Compression.fp16();
                case "bf16" -> Compression.bf16();
                case "int8" -> Compression.int8Blockwise(256);
                default -> throw new IllegalArgumentException("compression must be none, fp16, bf16 or int8");
            }, alloc);
            boolean firstSize = true;
            for (long bytes = minBytes; bytes <= maxBytes; bytes *= 2) {
                long count = Math.max(1, bytes / 4);
                if (op.equals("allgather") || op.equals("reducescatter")) {
                    count = Math.max(n, count / n * n);
                }
                final long size = bytes;
                long per = (op.equals("allgather") || op.equals("reducescatter")) ? count / n : count;
                float[] init = new float[(int) (op.equals("allgather") ? per : count)];
                Arrays.fill(init, comm.rank() + 1);
                try (Tensor in = onDevice(Tensor.fromArray(alloc, init, init.length), dev);
                     Tensor out = Tensor.zeros(alloc, DType.FLOAT32, dev, op.equals("reducescatter") ? per : count)) {
                    Runnable once = switch (op) {
                        case "allreduce" -> car == null
                                ? () -> comm.allReduce(in, out, ReduceOp.SUM, OpOptions.defaults()).await()
                                : () -> car.allReduce("bench-" + size, out, ReduceOp.SUM).await();
                        case "allgather" -> () -> comm.allGather(in, out).await();
                        case "reducescatter" -> () -> comm.reduceScatter(in, out, ReduceOp.SUM).await();
                        case "broadcast" -> () -> comm.broadcast(in, out, 0, OpOptions.defaults()).await();
                        case "sendrecv" -> () -> {
                            var s = comm.send(in, (comm.rank() + 1) % n, 0);
                            var r = comm.recv(out, (comm.rank() + n - 1) % n, 0);
                            s.await();
                            r.await();
                        };
                        default -> throw new IllegalArgumentException("unknown op " + op);
                    };
                    // the first size also warms up the JIT and the transport, so that it is not timed cold: 200
                    // ops, then more until 2 s have passed on rank 0 (the count is agreed, the same on every rank).
                    // Measured: with 200 ops alone a first size of 1 MiB timed the C2 compiler threads too (a
                    // broadcast at 0.45-0.59x native as the first size, 0.93-0.96x after smaller sizes); every
                    // later size gets three untimed ops
                    int warm = 3;
                    if (firstSize) {
                        long w0 = System.nanoTime();
                        for (int i = 0; i < 200; i++) {
                            once.run();
                        }
                        double perOp = Math.max((System.nanoTime() - w0) / 1e9 / 200, 1e-7);
                        warm = (int) Math.min(100_000, Math.ceil(maxOverRanks(comm, alloc, dev, 2.0 / perOp)));
                    }
                    for (int i = 0; i < warm; i++) {
                        once.run();
                    }
                    firstSize = false;
                    long c0 = System.nanoTime();
                    once.run();
                    double one = maxOverRanks(comm, alloc, dev, (System.nanoTime() - c0) / 1e9);
                    long iters = Math.max(5, (long) (minTime / Math.max(one, 1e-7)));
                    long sentBefore = car == null ? comm.bytesSent() : car.bytesSent();
                    double elapsed = Double.MAX_VALUE; // best of three trials, each timed on the slowest rank
                    for (int trial = 0; trial < 3; trial++) {
                        comm.barrier().await();
                        long s0 = System.nanoTime();
                        for (long i = 0; i < iters; i++) {
                            once.run();
                        }
                        elapsed = Math.min(elapsed, maxOverRanks(comm, alloc, dev, (System.nanoTime() - s0) / 1e9));
                    }
                    long sent = ((car == null ? comm.bytesSent() : car.bytesSent()) - sentBefore) / 3;
                    if (car != null) {
                        try (Tensor fresh = Tensor.fromArray(alloc, fill((int) count, comm.rank() + 1), count)) {
                            car.allReduce("check-" + bytes, fresh, ReduceOp.SUM).await();
                            copy(fresh, out);
                        }
                    }
                    long wrong = countWrong(op, out, comm.rank(), n, per, car != null);
                    String plain = "";
                    if (car != null) {
                        // the unaccelerated path on the same sizes, in the same run
                        Runnable p = () -> comm.allReduce(in, out, ReduceOp.SUM, OpOptions.defaults()).await();
                        p.run();
                        long pb = comm.bytesSent();
                        double pt = Double.MAX_VALUE;
                        for (int trial = 0; trial < 3; trial++) {
                            comm.barrier().await();
                            long s0 = System.nanoTime();
                            for (long i = 0; i < iters; i++) {
                                p.run();
                            }
                            pt = Math.min(pt, maxOverRanks(comm, alloc, dev, (System.nanoTime() - s0) / 1e9));
                        }
                        plain = ",\"plain_time_us\":" + pt / iters * 1e6 + ",\"plain_wire_bytes_per_op\":"
                                + (comm.bytesSent() - pb) / (3 * iters);
                    }
                    if (comm.rank() == 0) {
                        System.out.println("{\"kind\":\"row\",\"bytes\":" + count * 4 + ",\"count\":" + count
                                + ",\"time_us\":" + elapsed / iters * 1e6 + ",\"wrong\":" + wrong
                                + ",\"wire_bytes_per_op\":" + sent / iters + plain + "}");
                        System.out.flush();
                    }
                }
            }
            if (car != null) {
                car.close();
            }
            if (n > 1 && System.getenv("TORUS_BENCH_SHRINK") != null) {
                if (comm.rank() == n - 1) {
                    return; // leaves; the others rebuild without it
                }
                long r0 = System.nanoTime();
                try (Communicator smaller = comm.shrink(n - 1)) {
                    smaller.barrier().await();
                    double ms = (System.nanoTime() - r0) / 1e6;
                    if (comm.rank() == 0) {
                        System.out.println("{\"kind\":\"setup\",\"shrink_ms\":" + ms + "}");
                    }
                }
            }
        }
        System.out.flush();
    }

    private static float[] fill(int n, float v) {
        float[] a = new float[n];
        Arrays.fill(a, v);
        return a;
    }

    private static void copy(Tensor from, Tensor to) {
        ByteBuffer src = ((dev.torus.memory.HostBuffer) from.buffer()).view(0, from.byteSize());
        ((dev.torus.memory.HostBuffer) to.buffer()).view(0, to.byteSize()).put(src);
    }

    private static double maxOverRanks(Communicator comm, Allocator alloc, Device dev, double v) {
        try (Tensor t = onDevice(Tensor.fromArray(alloc, new float[] {(float) v}, 1), dev)) {
            comm.allReduce(t, ReduceOp.MAX).await();
            return t.toFloatArray()[0];
        }
    }

    /** Moves {@code t} to {@code dev}, closing the original when a copy was made. */
    private static Tensor onDevice(Tensor t, Device dev) {
        if (t.device().equals(dev)) {
            return t;
        }
        try (t) {
            return t.to(dev);
        }
    }

    /** Elements that differ from the exact result (compressed runs allow the documented int8 error: none here, the inputs are small integers). */
    private static long countWrong(String op, Tensor out, int rank, int n, long per, boolean compressed) {
        float[] v = out.toFloatArray();
        long wrong = 0;
        for (int i = 0; i < v.length; i++) {
            float want = switch (op) {
                case "allreduce", "reducescatter" -> n * (n + 1) / 2f;
                case "allgather" -> (float) (i / per + 1);
                case "broadcast" -> 1f;
                case "sendrecv" -> (float) ((rank + n - 1) % n + 1);
                default -> Float.NaN;
            };
            if (compressed) {
                if (Math.abs(v[i] - want) > 0.02f * want) {
                    wrong++;
                }
            } else if (v[i] != want) {
                wrong++;
            }
        }
        return wrong;
    }
}
