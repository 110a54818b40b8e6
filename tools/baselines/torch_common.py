"""Pieces shared by the PyTorch baselines (imported from the same directory)."""
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint


class BiasGelu(nn.Module):
    """Torus's BiasGelu layer: bias add, then tanh-approximated GELU."""

    def __init__(self, n):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(n))

    def forward(self, x):
        return F.gelu(x + self.bias, approximate="tanh")


def sqrt_n_checkpointed(net, x):
    """Runs the nn.Sequential `net` on x in ceil(sqrt(len(net))) segments, every segment but the last under
    non-reentrant torch.utils.checkpoint: what checkpoint_sequential(net, segments, x, use_reentrant=False)
    does on PyTorch 2.x, written out so that PyTorch 1.13 (whose checkpoint_sequential has no use_reentrant)
    runs it too."""
    n = len(net)
    segments = max(1, math.ceil(math.sqrt(n)))
    size = math.ceil(n / segments)
    for start in range(0, n, size):
        part = net[start:start + size]
        x = part(x) if start + size >= n else checkpoint(part, x, use_reentrant=False)
    return x


def open_device(name, script):
    """torch.device(name), or exit 2 with one line when it is cuda and PyTorch sees no GPU. On a CPU, PyTorch
    gets every core, as Torus's CPU kernels do by default."""
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print("%s: device %s but torch.cuda.is_available() is False" % (script, name), file=sys.stderr)
        sys.exit(2)
    if dev.type == "cpu":
        torch.set_num_threads(os.cpu_count())
    return dev


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
