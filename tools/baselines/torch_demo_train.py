#!/usr/bin/env python3
"""PyTorch peer of `./torus demo`'s training loop, in one process on one device.

The same model (x blocks of Linear without bias -> LayerNorm -> bias + tanh-GELU, then a
Linear head with bias; 32 inputs, 8 classes, no dropout), the same optimiser (AdamW, lr
0.002, betas 0.9/0.999, eps 1e-8, weight decay 0.01), the same global batch, epochs and
training-set size, and the same checkpointing (sqrt(n) through checkpoint_sequential,
or none). Each step does what the demo's step does: gather the batch from a host-side
data set in a per-epoch shuffled order, copy it to the device, forward, cross-entropy,
backward, optimiser step, and read the loss back to the host.

The timing rule is the demo's: samples/s = steps * batch / wall time of the whole
training loop, first step included. The data is a Gaussian mixture of the same shape,
generated here; only throughput is compared.

Usage: torch_demo_train.py [--device cuda|cpu] [--blocks 6] [--width 128] [--batch 256]
                           [--epochs 4] [--train-rows 16384] [--policy sqrt|none]
                           [--torus-summary torus-demo/summary.json]
Prints one JSON object; with --torus-summary also the ratio of the demo's samples/s
(its data-parallel run and its single-process run) to this one.
"""
import argparse
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from torch_common import BiasGelu, open_device, sqrt_n_checkpointed

FEATURES, CLASSES = 32, 8


def model(blocks, width, dev):
    torch.manual_seed(7)
    layers = []
    for b in range(blocks):
        fan_in = FEATURES if b == 0 else width
        lin = nn.Linear(fan_in, width, bias=False)
        nn.init.uniform_(lin.weight, -math.sqrt(6 / fan_in), math.sqrt(6 / fan_in))
        layers += [lin, nn.LayerNorm(width, eps=1e-5), BiasGelu(width)]
    layers.append(nn.Linear(width, CLASSES))
    return nn.Sequential(*layers).to(dev)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--blocks", type=int, default=6)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--train-rows", type=int, default=16384)
    p.add_argument("--policy", choices=["sqrt", "none"], default="sqrt")
    p.add_argument("--torus-summary")
    a = p.parse_args()
    dev = open_device(a.device, "torch_demo_train.py")

    g = torch.Generator().manual_seed(7)
    centers = torch.randn(CLASSES, FEATURES, generator=g) * 0.4
    labels = torch.randint(0, CLASSES, (a.train_rows,), generator=g)
    data = centers[labels] + torch.randn(a.train_rows, FEATURES, generator=g) * 0.5

    net = model(a.blocks, a.width, dev)
    opt = torch.optim.AdamW(net.parameters(), lr=0.002, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    steps_per_epoch = a.train_rows // a.batch
    losses = []
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    t0 = time.perf_counter()
    for epoch in range(a.epochs):
        order = torch.randperm(a.train_rows, generator=torch.Generator().manual_seed(7 + epoch))
        for s in range(steps_per_epoch):
            idx = order[s * a.batch:(s + 1) * a.batch]
            x = data[idx].to(dev)
            y = labels[idx].to(dev)
            opt.zero_grad(set_to_none=False)
            out = sqrt_n_checkpointed(net, x) if a.policy == "sqrt" else net(x)
            loss = F.cross_entropy(out, y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    secs = time.perf_counter() - t0
    steps = a.epochs * steps_per_epoch
    row = {"impl": "torch", "device": str(dev), "policy": a.policy, "blocks": a.blocks, "width": a.width,
           "global_batch": a.batch, "steps": steps, "train_seconds": secs,
           "samples_per_second": steps * a.batch / secs, "first_loss": losses[0], "final_loss": losses[-1],
           "torch": torch.__version__}
    if dev.type == "cuda":
        row["gpu"] = torch.cuda.get_device_name(dev)
    print(json.dumps(row))
    if a.torus_summary:
        with open(a.torus_summary) as f:
            t = json.load(f)
        for run in ("data_parallel", "single_process"):
            if run in t:
                sps = t[run]["samples_per_second"]
                print("# torus demo %-15s %10.0f samples/s on %s (%s workers); PyTorch %10.0f; torus/torch %.2f"
                      % (run, sps, t.get("device"), t.get("workers") if run == "data_parallel" else 1,
                         row["samples_per_second"], sps / row["samples_per_second"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
