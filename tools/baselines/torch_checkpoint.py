#!/usr/bin/env python3
"""PyTorch peer of `torus-bench recompute` on one GPU: the same block MLP
(Linear without bias -> LayerNorm -> bias + tanh-GELU -> Dropout, x blocks, then a
Linear head), the same step (forward, cross-entropy, backward, SGD with momentum)
and the same timing rule (interleaved rounds, best round's mean step time).

Policies: none; sqrt(n): non-reentrant torch.utils.checkpoint over
ceil(sqrt(layers)) segments (torch_common.py); selective, which checkpoints each block's
LayerNorm -> GELU -> Dropout so that the Linear outputs are kept.
Peak activation bytes = torch.cuda.max_memory_allocated during the step minus
the memory held before it (parameters, gradients, optimizer state, batch).

Usage: torch_checkpoint.py [blocks width batch dropout steps rounds [device]]   (device: cuda or cpu;
on cpu the peak memory fields are null)
Prints one JSON object per policy, in the fields of torus-bench recompute --json.
"""
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from torch_common import BiasGelu, open_device, sqrt_n_checkpointed, sync

blocks, width, batch, dropout, steps, rounds = 32, 512, 256, 0.1, 5, 3
if len(sys.argv) > 1:
    blocks, width, batch = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    dropout, steps, rounds = float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
classes = 16
dev = open_device(sys.argv[7] if len(sys.argv) > 7 else "cuda", "torch_checkpoint.py")


class Elementwise(nn.Module):
    """LayerNorm -> bias-GELU -> Dropout; checkpointed as a unit by the selective policy."""

    def __init__(self, n, p, selective):
        super().__init__()
        self.ln = nn.LayerNorm(n, eps=1e-5)
        self.act = BiasGelu(n)
        self.drop = nn.Dropout(p) if p > 0 else nn.Identity()
        self.selective = selective

    def run(self, x):
        return self.drop(self.act(self.ln(x)))

    def forward(self, x):
        if self.selective:
            return checkpoint(self.run, x, use_reentrant=False)
        return self.run(x)


def model(selective):
    torch.manual_seed(1)
    layers = []
    for _ in range(blocks):
        lin = nn.Linear(width, width, bias=False)
        nn.init.uniform_(lin.weight, -math.sqrt(6 / width), math.sqrt(6 / width))
        layers += [lin, Elementwise(width, dropout, selective)]
    layers.append(nn.Linear(width, classes))
    return nn.Sequential(*layers).to(dev)


def run_policy(name):
    net = model(name == "selective")
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    g = torch.Generator(device="cpu").manual_seed(7)
    x = torch.randn(batch, width, generator=g).to(dev)
    y = torch.randint(0, classes, (batch,), generator=g).to(dev)

    def step():
        opt.zero_grad(set_to_none=False)
        out = sqrt_n_checkpointed(net, x) if name == "sqrt(n)" else net(x)
        loss = F.cross_entropy(out, y)
        loss.backward()
        opt.step()
        return loss.item()

    step()
    sync(dev)
    if dev.type != "cuda":
        return step, None
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    step()
    sync(dev)
    peak = torch.cuda.max_memory_allocated() - base
    return step, peak


policies = ["none", "sqrt(n)", "selective"]
runs = {p: run_policy(p) for p in policies}
best = {p: float("inf") for p in policies}
for _ in range(rounds):
    for p in policies:
        step, _ = runs[p]
        step()
        sync(dev)
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        sync(dev)
        best[p] = min(best[p], (time.perf_counter() - t0) * 1e3 / steps)
for p in policies:
    print(json.dumps({"impl": "torch", "device": str(dev), "policy": p, "storage": "fp32",
                      "step_ms": best[p], "time_ratio": best[p] / best["none"],
                      "peak_activation_bytes": runs[p][1],
                      "memory_ratio": runs[p][1] / runs["none"][1] if runs[p][1] is not None else None,
                      "blocks": blocks, "width": width, "batch": batch,
                      "torch": torch.__version__,
                      "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None}))
