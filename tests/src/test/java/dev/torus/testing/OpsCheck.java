package dev.torus.testing;

import dev.torus.DType;
import dev.torus.Device;
import dev.torus.tensor.Tensor;
import dev.torus.comm.Communicator;
import dev.torus.comm.OpOptions;
import dev.torus.comm.ReduceOp;
import dev.torus.comm.Work;
import dev.torus.memory.Allocator;
import java.util.ArrayList;
import java.util.List;

/**
 * Runs every op on every dtype on one rank and returns the mismatches against the
 * scalar references; shared by the in-process and the multi-process tests.
 */
public final class OpsCheck {
    private OpsCheck() {}

    public static List<String> run(Communicator c, Allocator root, long seed, int N) throws Exception {
        int world = c.size();
        List<String> err = new ArrayList<>();
        int me = c.rank();
        for (DType dt : DType.values()) {
            for (ReduceOp op : ReduceOp.values()) {
                double[][] in = inputs(seed, world, dt, op, N);
                double[] want = CommReference.reduce(dt, op, in);
                try (Tensor t = make(root, dt, in[me]); Tensor o = Tensor.zeros(root, dt, Device.cpu(), N)) {
                c.allReduce(t, op).await();
                expect(err, "allReduce in-place " + dt + " " + op, want, read(t));
                try (Tensor src = make(root, dt, in[me])) {
                    c.allReduce(src, o, op, OpOptions.defaults()).await();
                    expect(err, "allReduce out-of-place " + dt + " " + op, want, read(o));
                    expect(err, "allReduce out-of-place leaves input " + dt, in[me], read(src));
                }
                }
            }
            double[][] in = inputs(seed, world, dt, ReduceOp.SUM, N);
            int bcastRoot = world - 1;
            try (Tensor t = make(root, dt, in[me]); Tensor o = Tensor.zeros(root, dt, Device.cpu(), N)) {
                c.broadcast(t, bcastRoot).await();
                expect(err, "broadcast in-place " + dt, in[bcastRoot], read(t));
                try (Tensor src = make(root, dt, in[me])) {
                c.broadcast(src, o, 0, OpOptions.defaults()).await();
                expect(err, "broadcast out-of-place " + dt, in[0], read(o));
                }
            }
            for (ReduceOp op : new ReduceOp[] {ReduceOp.SUM, ReduceOp.MAX, ReduceOp.AVG}) {
                double[][] rin = inputs(seed, world, dt, op, N);
                double[] want = CommReference.reduce(dt, op, rin);
                int rroot = world / 2;
                try (Tensor t = make(root, dt, rin[me]); Tensor src = make(root, dt, rin[me]);
                 Tensor o = Tensor.zeros(root, dt, Device.cpu(), N)) {
                c.reduce(t, op, rroot).await();
                c.reduce(src, o, op, rroot, OpOptions.defaults()).await();
                if (me == rroot) {
                    expect(err, "reduce in-place " + dt + " " + op, want, read(t));
                    expect(err, "reduce out-of-place " + dt + " " + op, want, read(o));
                }
                }
            }
            try (Tensor t = make(root, dt, in[me]); Tensor o = Tensor.zeros(root, dt, Device.cpu(), (long) N * world)) {
                c.allGather(t, o).await();
                expect(err, "allGather " + dt, concat(in), read(o));
            }
            double[] buf = new double[N * world];
            System.arraycopy(in[me], 0, buf, me * N, N);
            try (Tensor t = make(root, dt, buf)) {
                c.allGatherInPlace(t, OpOptions.defaults()).await();
                expect(err, "allGather in-place " + dt, concat(in), read(t));
            }
            for (ReduceOp op : new ReduceOp[] {ReduceOp.SUM, ReduceOp.MIN, ReduceOp.AVG}) {
                double[][] big = inputs(seed + 1, world, dt, op, N * world);
                double[] full = CommReference.reduce(dt, op, big);
                try (Tensor t = make(root, dt, big[me]); Tensor o = Tensor.zeros(root, dt, Device.cpu(), N)) {
                c.reduceScatter(t, o, op).await();
                expect(err, "reduceScatter " + dt + " " + op, block(full, me, N), read(o));
                }
                try (Tensor t = make(root, dt, big[me])) {
                c.reduceScatterInPlace(t, op, OpOptions.defaults()).await();
                expect(err, "reduceScatter in-place " + dt + " " + op, block(full, me, N),
                        block(read(t), me, N));
                }
            }
            double[][] a2a = inputs(seed + 2, world, dt, ReduceOp.SUM, N * world);
            double[][] wantParts = new double[world][];
            for (int src = 0; src < world; src++) {
                wantParts[src] = block(a2a[src], me, N);
            }
            try (Tensor t = make(root, dt, a2a[me]); Tensor o = Tensor.zeros(root, dt, Device.cpu(), (long) N * world)) {
                c.allToAll(t, o).await();
                expect(err, "allToAll " + dt, concat(wantParts), read(o));
            }
            try (Tensor t = make(root, dt, a2a[me])) {
                c.allToAllInPlace(t, OpOptions.defaults()).await();
                expect(err, "allToAll in-place " + dt, concat(wantParts), read(t));
            }
            if (world > 1) {
                int next = (me + 1) % world;
                int prev = (me + world - 1) % world;
                try (Tensor s = make(root, dt, in[me]); Tensor r = Tensor.zeros(root, dt, Device.cpu(), N)) {
                Work ws = c.send(s, next, 7);
                Work wr = c.recv(r, prev, 7);
                ws.await();
                wr.await();
                expect(err, "send/recv ring " + dt, in[prev], read(r));
                }
            }
            c.barrier().await();
        }
        return err;
    }

    static Tensor make(Allocator root, DType dt, double[] v) {
        return Tensor.fromBytes(root, dt, TypedData.toBytes(dt, v), v.length);
    }

    static double[] read(Tensor t) {
        return TypedData.fromBytes(t.dtype(), t.toByteArray());
    }

    static double[][] inputs(long seed, int world, DType dt, ReduceOp op, int n) {
        double[][] in = new double[world][];
        for (int r = 0; r < world; r++) {
            in[r] = CommReference.input(seed, r, dt, op, n);
        }
        return in;
    }

    static double[] concat(double[][] parts) {
        int n = 0;
        for (double[] p : parts) {
            n += p.length;
        }
        double[] out = new double[n];
        int o = 0;
        for (double[] p : parts) {
            System.arraycopy(p, 0, out, o, p.length);
            o += p.length;
        }
        return out;
    }

    static double[] block(double[] v, int b, int n) {
        double[] out = new double[n];
        System.arraycopy(v, b * n, out, 0, n);
        return out;
    }

    static void expect(List<String> err, String what, double[] want, double[] got) {
        if (want.length != got.length) {
            err.add(what + ": length " + got.length + ", expected " + want.length);
            return;
        }
        for (int i = 0; i < want.length; i++) {
            if (Double.compare(want[i], got[i]) != 0) {
                err.add(what + ": element " + i + " is " + got[i] + ", expected " + want[i]);
                return;
            }
        }
    }
}
