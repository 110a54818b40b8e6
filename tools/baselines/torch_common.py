"""Pieces shared by the PyTorch baselines (imported from the same directory)."""
import math

import torch
from torch.utils.checkpoint import checkpoint


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


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
