#!/usr/bin/env python3
"""PyTorch peer of `torus-bench dp`: DistributedDataParallel over gloo on this host.

The model is the benchmark's: `blocks` blocks of Linear without bias -> LayerNorm ->
bias + tanh-GELU, then a Linear head with bias to 16 classes, inputs as wide as the
blocks. SGD with lr 1e-3 and momentum 0.9, cross-entropy, no checkpointing. Each of
`nproc` processes trains on its own fixed batch of `batch` Gaussian rows (the same
shapes as the Torus workers'; values do not change the speed), with DDP's gradient
buckets of `bucket_mib` MiB reduced while backward runs. Every process gets
cpu_count / nproc intra-op threads, as each Torus worker gets that many kernel threads.

With --nproc 1 it trains alone without DDP (the single-process baseline).
Timing: `warmup` untimed steps, a barrier, then `steps` timed steps and a barrier;
samples/s = nproc * batch * steps / time. Prints one JSON object on stdout (rank 0).
Exits 77 with one line when PyTorch is missing.

Usage: torch_ddp.py [--nproc 2] [--width 512] [--blocks 8] [--batch 64] [--steps 20]
                    [--warmup 3] [--bucket-mib 2] [--threads cores/nproc]
"""
import argparse
import json
import os
import socket
import sys
import time

try:
    import torch
    import torch.distributed as dist
    import torch.multiprocessing as mp
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover - depends on the machine
    print("torch_ddp.py: PyTorch is not importable (%s); on Debian: apt-get install python3-torch "
          "libopenblas0-pthread" % e, file=sys.stderr)
    sys.exit(77)

CLASSES = 16


class BiasGelu(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(n))

    def forward(self, x):
        return F.gelu(x + self.bias, approximate="tanh")


def model(width, blocks):
    torch.manual_seed(1)
    layers = []
    for _ in range(blocks):
        layers += [nn.Linear(width, width, bias=False), nn.LayerNorm(width, eps=1e-5), BiasGelu(width)]
    layers.append(nn.Linear(width, CLASSES))
    return nn.Sequential(*layers)


def worker(rank, a, port, out):
    torch.set_num_threads(a.threads if a.threads > 0 else max(1, (os.cpu_count() or 1) // a.nproc))
    ddp = a.nproc > 1
    if ddp:
        dist.init_process_group("gloo", init_method="tcp://127.0.0.1:%d" % port, rank=rank, world_size=a.nproc)
    net = model(a.width, a.blocks)
    if ddp:
        net = nn.parallel.DistributedDataParallel(net, bucket_cap_mb=a.bucket_mib)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    g = torch.Generator().manual_seed(rank)
    x = torch.randn(a.batch, a.width, generator=g)
    y = torch.randint(0, CLASSES, (a.batch,), generator=g)

    def step():
        opt.zero_grad(set_to_none=False)
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()

    for _ in range(a.warmup):
        step()
    if ddp:
        dist.barrier()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    if ddp:
        dist.barrier()
    dt = time.perf_counter() - t0
    if rank == 0:
        out.put({"nproc": a.nproc, "step_ms": dt / a.steps * 1e3,
                 "samples_s": a.nproc * a.batch * a.steps / dt, "torch": torch.__version__,
                 "threads": torch.get_num_threads(), "blas": blas()})
    if ddp:
        dist.destroy_process_group()


def blas():
    cfg = torch.__config__.show().lower()
    for name in ("openblas", "mkl", "blis"):
        if name in cfg:
            return name
    return "unknown"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--blocks", type=int, default=8)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--bucket-mib", type=float, default=2.0)
    p.add_argument("--threads", type=int, default=0, help="intra-op threads per process (default cores / nproc)")
    a = p.parse_args()
    for name in ("nproc", "width", "blocks", "batch", "steps"):
        if getattr(a, name) < 1:
            p.error("--%s must be >= 1, got %d" % (name, getattr(a, name)))
    ctx = mp.get_context("spawn")
    out = ctx.SimpleQueue()
    port = free_port()
    procs = [ctx.Process(target=worker, args=(r, a, port, out)) for r in range(a.nproc)]
    for pr in procs:
        pr.start()
    for pr in procs:
        pr.join(600)
    for pr in procs:
        if pr.is_alive():  # hung: do not leave it to multiprocessing's exit handler, which would wait forever
            pr.terminate()
            pr.join(10)
    bad = [pr.exitcode for pr in procs if pr.exitcode != 0]
    if bad or out.empty():
        print("torch_ddp.py: a worker failed (exit codes %s)" % [pr.exitcode for pr in procs], file=sys.stderr)
        sys.exit(1)
    print(json.dumps(out.get()))


if __name__ == "__main__":
    main()
