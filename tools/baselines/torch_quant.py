#!/usr/bin/env python3
"""PyTorch peer of `torus-bench quant`, on the same device and in the same run.

Two parts:
  --check DIR     reads the input and the Torus outputs written by
                  `torus-bench quant --dump` (DIR/<device>/manifest.json), computes the
                  PyTorch peers on the same device from the same input (and, for the
                  quantize steps, the same float32 scales), and counts the elements
                  that differ bit for bit. Exit status 1 when any does.
  the sweep       GB/s of logical bytes (bytes read + written, counted as torus-bench
                  quant counts them) for each PyTorch peer, over the same sizes, with
                  the same timing rule: warm-up, then the median of 5 batches of at
                  least --min-time seconds. `copy_gbps` is a device-to-device copy
                  (Tensor.copy_) moving the same bytes, the ceiling, timed here too.
  --torus-json F  joins the sweep with torus-bench quant --json rows from this run and
                  prints Torus GB/s / PyTorch GB/s per kernel and size.

PyTorch has no symmetric-int8 quantizer that derives its own scale, so the dynamic
rows time amax (or per-row amax) plus quantize_per_tensor / quantize_per_channel;
blockwise rows are quantize_per_channel over rows of the block size. Outputs are
allocated by PyTorch on every call (it has no out= form for quantize); casts write
into a preallocated tensor with copy_, as Torus does.

Sizes: those of the --torus-json rows, or --min-size to --max-size by 4x.

Usage: torch_quant.py [--device cuda|cpu] [--min-size BYTES] [--max-size BYTES]
                      [--min-time S] [--check DIR] [--torus-json FILE] [--json FILE]
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

from torch_common import open_device, sync


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--min-size", type=int, help="bytes (default: the sizes of the --torus-json rows, else 1 MiB)")
    p.add_argument("--max-size", type=int, help="bytes (default: the sizes of the --torus-json rows, else 1 GiB)")
    p.add_argument("--min-time", type=float, default=0.1)
    p.add_argument("--check", help="directory given to torus-bench quant --dump")
    p.add_argument("--torus-json", help="torus-bench quant --json output of the same run")
    p.add_argument("--json", help="also write the sweep rows here")
    p.add_argument("--no-sweep", action="store_true", help="only the bit-for-bit check")
    return p.parse_args()


def seconds_per_call(fn, dev, min_time):
    for _ in range(3):
        fn()
    sync(dev)
    calls = 1
    while True:  # calibrate: calls per batch so that a batch lasts at least min_time
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        sync(dev)
        dt = time.perf_counter() - t
        if dt >= min_time:
            break
        calls = max(calls * 2, int(calls * min_time / max(dt, 1e-9) * 1.2))
    samples = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        sync(dev)
        samples.append((time.perf_counter() - t) / calls)
    return statistics.median(samples)


# ---- bit-for-bit check against the dump --------------------------------------------------------

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
          "int8": torch.int8, "uint8": torch.uint8}
BITS = {torch.float32: torch.int32, torch.float16: torch.int16, torch.bfloat16: torch.int16,
        torch.int8: torch.int8, torch.uint8: torch.uint8}


def load(d, manifest, name, dev):
    meta = manifest["files"][name]
    dt = DTYPES[meta["dtype"]]
    with open(os.path.join(d, name + ".bin"), "rb") as f:
        raw = bytearray(f.read())
    t = torch.frombuffer(raw, dtype=dt).reshape(meta["shape"])
    return t.to(dev)


def compare(name, torus, peer):
    """Number of elements whose bits differ, and the first one."""
    a = torus.contiguous().view(BITS[torus.dtype]).flatten().cpu()
    b = peer.contiguous().view(BITS[peer.dtype]).flatten().cpu()
    if a.shape != b.shape:
        return {"check": name, "elements": int(a.numel()), "mismatches": -1,
                "note": "shape %s != %s" % (tuple(a.shape), tuple(b.shape))}
    diff = (a != b).nonzero().flatten()
    row = {"check": name, "elements": int(a.numel()), "mismatches": int(diff.numel())}
    if diff.numel():
        i = int(diff[0])
        row.update(first=i, torus=float(torus.flatten()[i].float()), peer=float(peer.flatten()[i].float()))
    return row


def check(d, dev):
    with open(os.path.join(d, "manifest.json")) as f:
        m = json.load(f)
    x = load(d, m, "x", dev)
    rows = []
    rows.append(compare("cast f32->f16 (.half())", load(d, m, "cast_f16", dev), x.half()))
    rows.append(compare("cast f32->bf16 (.bfloat16())", load(d, m, "cast_bf16", dev), x.bfloat16()))
    rows.append(compare("cast f16->f32 (.float())", load(d, m, "f16_to_f32", dev),
                        load(d, m, "cast_f16", dev).float()))
    mn, mx = torch.aminmax(x)
    rows.append(compare("min, max (torch.aminmax)", load(d, m, "min_max", dev), torch.stack([mn, mx])))
    scale, zp = float(m["affine_scale"]), int(m["affine_zero_point"])
    scale = float(torch.tensor(scale, dtype=torch.float32))  # the float32 value Torus used
    rows.append(compare("uint8 affine per-tensor (quantize_per_tensor)", load(d, m, "affine_u8", dev),
                        torch.quantize_per_tensor(x, scale, zp, torch.quint8).int_repr()))
    s = load(d, m, "per_tensor_i8_scales", dev)
    rows.append(compare("int8 per-tensor, Torus scale (quantize_per_tensor)", load(d, m, "per_tensor_i8", dev),
                        torch.quantize_per_tensor(x, float(s[0]), 0, torch.qint8).int_repr()))
    rows.append(compare("int8 per-tensor scale = amax/127", s, (x.abs().amax() / 127).reshape(1)))
    s = load(d, m, "per_channel_i8_scales", dev)
    zeros = torch.zeros(s.numel(), dtype=torch.int64, device=dev)
    rows.append(compare("int8 per-channel rows, Torus scales (quantize_per_channel)",
                        load(d, m, "per_channel_i8", dev),
                        torch.quantize_per_channel(x, s.double(), zeros, 0, torch.qint8).int_repr()))
    s = load(d, m, "block256_i8_scales", dev)
    zeros = torch.zeros(s.numel(), dtype=torch.int64, device=dev)
    xb = x.reshape(-1, 256)
    rows.append(compare("int8 block 256, Torus scales (quantize_per_channel on rows of 256)",
                        load(d, m, "block256_i8", dev).reshape(-1, 256),
                        torch.quantize_per_channel(xb, s.double(), zeros, 0, torch.qint8).int_repr()))
    q = torch._make_per_channel_quantized_tensor(load(d, m, "block256_i8", dev).reshape(-1, 256), s.double(),
                                                 zeros, 0)
    rows.append(compare("dequant int8 block 256 -> f32 (dequantize)",
                        load(d, m, "dequant_block256_f32", dev).reshape(-1, 256), q.dequantize()))
    return m["device"], rows


# ---- the sweep ---------------------------------------------------------------------------------

def peers(x, rows_of):
    """(Torus kernel name, logical bytes, PyTorch call, what it is) for an fp32 input x of n elements."""
    n = x.numel()
    dev = x.device
    h = x.half()
    y16 = torch.empty_like(x, dtype=torch.float16)
    yb = torch.empty_like(x, dtype=torch.bfloat16)
    yf = torch.empty_like(x)
    zero = torch.zeros((), dtype=torch.int64, device=dev)

    def per_tensor():
        s = x.abs().amax() / 127
        return torch.quantize_per_tensor(x, s, zero, torch.qint8)

    def per_rows(r):
        xr = x.reshape(-1, r)
        zeros = torch.zeros(xr.shape[0], dtype=torch.int64, device=dev)

        def f():
            s = xr.abs().amax(dim=1) / 127
            return torch.quantize_per_channel(xr, s, zeros, 0, torch.qint8)
        return f

    q256 = per_rows(256)()
    out = [
        ("cast f32->f16", 6 * n, lambda: y16.copy_(x), "copy_ into float16"),
        ("cast f32->bf16", 6 * n, lambda: yb.copy_(x), "copy_ into bfloat16"),
        ("cast f16->f32", 6 * n, lambda: yf.copy_(h), "copy_ float16 into float32"),
        ("stats absmax+min+max f32", 4 * n, lambda: torch.aminmax(x), "torch.aminmax"),
        ("quant int8 per-tensor", 5 * n, per_tensor, "abs().amax()/127 + quantize_per_tensor"),
        ("quant int8 per-channel rows", 5 * n, per_rows(n // rows_of), "row amax/127 + quantize_per_channel"),
        ("quant int8 block 64", 5 * n, per_rows(64), "amax/127 + quantize_per_channel, rows of 64"),
        ("quant int8 block 256", 5 * n, per_rows(256), "amax/127 + quantize_per_channel, rows of 256"),
        ("quant int8 block 4096", 5 * n, per_rows(4096), "amax/127 + quantize_per_channel, rows of 4096"),
        ("quant uint8 affine per-tensor", 5 * n, lambda: torch.quantize_per_tensor(x, 0.02, 128, torch.quint8),
         "quantize_per_tensor(0.02, 128)"),
        ("dequant int8 block 256 ->f32", n + 4 * n + 4 * ((n + 255) // 256), lambda: q256.dequantize(),
         "dequantize (per-channel, rows of 256)"),
        ("dequant int8 block 256 ->bf16", n + 2 * n + 4 * ((n + 255) // 256),
         lambda: q256.dequantize().bfloat16(), "dequantize().bfloat16()"),
    ]
    return out


def copy_gbps(dev, logical, min_time):
    half = logical // 2
    a = torch.empty(half, dtype=torch.uint8, device=dev)
    b = torch.empty(half, dtype=torch.uint8, device=dev)
    a.fill_(1)
    b.copy_(a)
    return 2 * half / seconds_per_call(lambda: b.copy_(a), dev, min_time) / 1e9


def sweep(dev, sizes, min_time, emit):
    g = torch.Generator(device="cpu").manual_seed(42)
    for size in sizes:
        n = size // 4
        rows_of = 1024 if n % 1024 == 0 else 1
        base = torch.randn(n, generator=g) * (1 + (torch.arange(n) & 255)).float()
        x = base.reshape(rows_of, n // rows_of).to(dev) if rows_of > 1 else base.to(dev)
        del base
        copies = {}
        for kernel, logical, fn, what in peers(x, rows_of):
            try:
                sec = seconds_per_call(fn, dev, min_time)
            except (RuntimeError, NotImplementedError) as e:  # an op this PyTorch build lacks on this device
                emit({"bench": "quant-torch", "kernel": kernel, "device": str(dev), "input_bytes": size,
                      "peer": what, "error": str(e).splitlines()[0][:200]})
                continue
            if logical not in copies:
                copies[logical] = copy_gbps(dev, logical, min_time)
            gbps = logical / sec / 1e9
            emit({"bench": "quant-torch", "kernel": kernel, "device": str(dev), "input_bytes": size, "elements": n,
                  "bytes": logical, "time_us": sec * 1e6, "gbps": gbps, "copy_gbps": copies[logical],
                  "ratio": gbps / copies[logical], "peer": what})
        del x
        if dev.type == "cuda":
            torch.cuda.empty_cache()


def torus_rows(path, dev_name):
    rows = {}
    with open(path) as f:
        for line in f:
            if line.startswith("{"):
                r = json.loads(line)
                if r.get("device") == dev_name and "gbps" in r:
                    rows[(r["kernel"], int(r["input_bytes"]))] = r
    return rows


def sizes_for(a, torus):
    if a.min_size is None and a.max_size is None and torus:
        return sorted({size for (_, size) in torus})
    size, hi, out = a.min_size or 1 << 20, a.max_size or 1 << 30, []
    while size <= hi:
        out.append(size)
        size *= 4
    return out


def join(torus, rows, dev_name):
    print("# Torus against PyTorch on %s: GB/s of the same logical bytes; vs_torch = Torus GB/s / PyTorch GB/s"
          % dev_name)
    print("# %-30s %12s %9s %9s %9s %9s  %s" % ("kernel", "input_bytes", "torus", "torch", "vs_torch", "copy",
                                             "peer"))
    for r in rows:
        t = torus.get((r["kernel"], r["input_bytes"]))
        if t is None or "gbps" not in r:
            continue
        print("  %-30s %12d %9.1f %9.1f %9.2f %9.1f  %s" % (r["kernel"], r["input_bytes"], t["gbps"], r["gbps"],
                                                         t["gbps"] / r["gbps"], r["copy_gbps"], r["peer"]))


def main():
    a = parse_args()
    dev = open_device(a.device, "torch_quant.py")
    print("# PyTorch %s on %s%s" % (torch.__version__, dev,
                                   (" [" + torch.cuda.get_device_name(dev) + "]") if dev.type == "cuda"
                                   else " [%d threads, quantized engines %s]"
                                   % (torch.get_num_threads(), torch.backends.quantized.supported_engines)))
    bad = 0
    if a.check:
        d = os.path.join(a.check, "cuda_0" if dev.type == "cuda" else "cpu")
        if not os.path.isfile(os.path.join(d, "manifest.json")):
            print("torch_quant.py: --check: no %s (run torus-bench quant --dump %s on %s first)"
                  % (os.path.join(d, "manifest.json"), a.check, dev), file=sys.stderr)
            return 2
        where, rows = check(d, dev)
        print("# bit-for-bit: Torus on %s against PyTorch on %s, finite input of %d elements"
              % (where, dev, rows[0]["elements"]))
        for r in rows:
            print(json.dumps(r))
            bad += r["mismatches"] != 0
    rows = []
    dev_name = "cuda:0" if dev.type == "cuda" else "cpu"
    torus = torus_rows(a.torus_json, dev_name) if a.torus_json else {}
    if not a.no_sweep:
        sink = open(a.json, "w") if a.json else None

        def emit(r):
            rows.append(r)
            line = json.dumps(r)
            print(line)
            if sink:
                sink.write(line + "\n")
        sweep(dev, sizes_for(a, torus), a.min_time, emit)
        if sink:
            sink.close()
        if torus:
            join(torus, rows, dev_name)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
