#!/usr/bin/env bash
# Registers and spills of every CUDA kernel, as ptxas reports them for one architecture.
# Needs nvcc only (no GPU). Usage: tools/ptxas-report.sh [sm_90]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ARCH="${1:-sm_90}"
NVCC="${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
printf '%-5s %-6s %-6s %-6s %s\n' regs stack spill smem kernel
for f in "$ROOT"/kernels/src/cuda/*.cu; do
    # the same numeric flags as kernels/CMakeLists.txt
    "$NVCC" -std=c++17 -O3 --fmad=false -prec-div=true -prec-sqrt=true -ftz=false \
        -I"$ROOT/kernels/include" -I"$ROOT/kernels/src" -arch="$ARCH" -Xptxas -v -c "$f" -o "$tmp/k.o" 2>&1 |
    awk '
        function num(line, what,   m) { return match(line, "[0-9]+ " what) ? substr(line, RSTART, RLENGTH - length(what) - 1) : "0" }
        /Compiling entry function/ { match($0, /\x27[^\x27]*\x27/); name = substr($0, RSTART + 1, RLENGTH - 2) }
        /bytes stack frame/ { stack = num($0, "bytes stack frame"); spill = num($0, "bytes spill stores") }
        /Used [0-9]+ registers/ {
            printf "%-5s %-6s %-6s %-6s %s\n", num($0, "registers"), stack, spill, num($0, "bytes smem"), name
        }'
done | sort -k5 | (command -v c++filt >/dev/null && c++filt || cat)
