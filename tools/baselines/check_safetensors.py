#!/usr/bin/env python3
"""Reads a model file that Torus wrote with the Python `safetensors` package, the
ecosystem's own reader, to show that it accepts the file as it is.

usage: check_safetensors.py FILE [--expect-int8]

Prints each tensor's name, dtype and shape in the file's order, then the metadata.
Checks that every INT8 tensor `X` (an int8 weight-only torus-mlp file's weights) has a
FLOAT32 tensor `X_scale` with one entry per row of `X`, and that those scales are finite
and >= 0. With --expect-int8, also checks that the file holds at least one INT8 weight and
that its metadata says dtype=int8-weight-only.

Exit status: 0 when the file loads and the checks pass; 1 when a check fails or the
package refuses the file; 2 for a usage error; 77 (the usual "skipped" code) when the
`safetensors` package is not installed, after one line that says so.
"""
import sys


def main(argv):
    args = [a for a in argv[1:] if a != "--expect-int8"]
    expect_int8 = "--expect-int8" in argv[1:]
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: check_safetensors.py FILE [--expect-int8]", file=sys.stderr)
        return 2
    path = args[0]
    try:
        from safetensors import safe_open
    except ImportError:
        print("check_safetensors.py: the Python safetensors package is not installed; skipped")
        return 77
    import numpy as np

    problems = []
    try:
        with safe_open(path, framework="numpy") as f:
            names = list(f.keys())
            info = {}
            for name in names:
                s = f.get_slice(name)
                info[name] = (s.get_dtype(), list(s.get_shape()))
                print(f"{name}\t{info[name][0]}\t{info[name][1]}")
            metadata = f.metadata() or {}
            for key, value in metadata.items():
                print(f"metadata\t{key}\t{value}")
            int8 = [n for n in names if info[n][0] == "I8"]
            for name in int8:
                scale = name + "_scale"
                shape = info[name][1]
                if scale not in info:
                    problems.append(f"{name}: INT8 without a {scale} tensor")
                    continue
                dtype, scale_shape = info[scale]
                if dtype != "F32" or scale_shape != shape[:1]:
                    problems.append(f"{scale}: expected F32 {shape[:1]}, got {dtype} {scale_shape}")
                    continue
                values = f.get_tensor(scale)
                if not np.all(np.isfinite(values)) or np.any(values < 0):
                    problems.append(f"{scale}: scales must be finite and >= 0")
            if expect_int8:
                if not int8:
                    problems.append("--expect-int8: the file holds no INT8 tensor")
                if metadata.get("dtype") != "int8-weight-only":
                    problems.append(f"--expect-int8: metadata dtype is {metadata.get('dtype')!r}, "
                                    "expected 'int8-weight-only'")
    except Exception as e:  # the package's own refusal: report it as a failed check
        print(f"check_safetensors.py: {path}: safetensors refused the file: {type(e).__name__}: {e}",
              file=sys.stderr)
        return 1
    for p in problems:
        print(f"check_safetensors.py: {path}: {p}", file=sys.stderr)
    if problems:
        return 1
    print(f"ok\t{len(names)} tensors")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
