#!/usr/bin/env python3
"""PyTorch peer for `torus-bench allreduce --backend nccl`: the same size sweep and
timing rule (slowest rank's mean time per call, best of three trials), with
torch.distributed.all_reduce over NCCL. At world size 1 the time is NCCL's per-call
overhead, which is what the GPU comparison in docs/BENCHMARKS.md reports.

usage: torch_allreduce.py MIN_BYTES MAX_BYTES MIN_TIME_S [BACKEND]
BACKEND is nccl (default, one GPU per rank) or gloo (CPU tensors: the peer of
`torus-bench allreduce` on its default Gloo backend).
Run once per rank with RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT set (for one
process: RANK=0 WORLD_SIZE=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=29511).
Prints one JSON object per size on rank 0: {"op","bytes","count","time_us"}.
"""
import json
import os
import sys
import time

import torch
import torch.distributed as dist

from torch_common import sync


def main():
    lo, hi, min_time = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    rank = int(os.environ["RANK"])
    world = int(os.environ["WORLD_SIZE"])
    backend = sys.argv[4] if len(sys.argv) > 4 else "nccl"
    if backend == "nccl":
        if not torch.cuda.is_available():
            print("torch_allreduce.py: nccl needs a GPU, and torch.cuda.is_available() is False", file=sys.stderr)
            return 2
        torch.cuda.set_device(rank % torch.cuda.device_count())
        dev = torch.device("cuda", torch.cuda.current_device())
    else:
        dev = torch.device("cpu")
    dist.init_process_group(backend, rank=rank, world_size=world)
    nbytes = lo
    while nbytes <= hi:
        count = max(1, nbytes // 4)
        x = torch.full((count,), float(rank + 1), device=dev)
        for _ in range(3):
            dist.all_reduce(x)
        sync(dev)
        t0 = time.perf_counter()
        dist.all_reduce(x)
        sync(dev)
        one = torch.tensor([time.perf_counter() - t0], device=dev)
        dist.all_reduce(one, op=dist.ReduceOp.MAX)
        iters = max(5, int(min_time / max(one.item(), 1e-7)))
        best = float("inf")
        for _ in range(3):
            dist.barrier()
            sync(dev)
            t0 = time.perf_counter()
            for _ in range(iters):
                dist.all_reduce(x)
            sync(dev)
            el = torch.tensor([time.perf_counter() - t0], device=dev)
            dist.all_reduce(el, op=dist.ReduceOp.MAX)
            best = min(best, el.item())
        if rank == 0:
            print(json.dumps({"op": "allreduce", "bytes": count * 4, "count": count,
                              "time_us": best / iters * 1e6}), flush=True)
        nbytes *= 2
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
