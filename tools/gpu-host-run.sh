#!/usr/bin/env bash
# Runs Torus from a bundle made by tools/gpu-bundle.sh, on a host without a JDK.
#   ./run.sh [all]      tests, bench, commbench, recompute and demo below, in turn (several minutes:
#                       on a time-limited host, run the modes one per call)
#   ./run.sh tests      gpu-tagged tests only
#   ./run.sh alltests   every test
#   ./run.sh bench [torus-bench quant options]   (default: --device cuda), then PyTorch's peers
#   ./run.sh commbench  NCCL sweep next to torch.distributed
#   ./run.sh recompute  checkpoint policies on cuda:0 next to torch.utils.checkpoint
#   ./run.sh demo       ./torus demo --device cuda, next to PyTorch training the same MLP on one GPU
# Results (JUnit reports, benchmark JSON) go to ./results next to this script.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
JAVA="$HERE/jre/bin/java"
RESULTS="$HERE/results"
mkdir -p "$RESULTS"

CONSOLE=$(ls "$HERE"/lib/junit-platform-console-standalone-*.jar)
CP=""
for j in "$HERE"/lib/*.jar; do
    case "$j" in *console-standalone*) ;; *) CP="$CP${CP:+:}$j" ;; esac
done

# CUDA and NCCL libraries already on the host: system paths and pip's nvidia packages.
dirs=()
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/nvidia/lib64 \
         /usr/lib/x86_64-linux-gnu /usr/lib64; do
    [ -d "$d" ] && dirs+=("$d")
done
if command -v python3 >/dev/null 2>&1; then
    nv=$(python3 -c 'import nvidia, os; print(os.path.dirname(nvidia.__path__[0]))' 2>/dev/null || true)
    if [ -n "$nv" ] && [ -d "$nv/nvidia" ]; then
        while IFS= read -r d; do dirs+=("$d"); done < <(find "$nv/nvidia" -maxdepth 2 -type d -name lib)
    fi
fi
ldpath="$HERE/native"   # Gloo and its dependencies, shipped in the bundle
for d in "${dirs[@]}"; do ldpath="$ldpath${ldpath:+:}$d"; done
export LD_LIBRARY_PATH="$ldpath${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "# library search path: ${ldpath:-<none>}"
for lib in libcuda.so.1 libcudart.so.13 libnccl.so.2 libcublas.so.13; do
    found=""
    for d in "${dirs[@]}"; do
        if [ -e "$d/$lib" ]; then found="$d/$lib"; break; fi
    done
    echo "# $lib: ${found:-not found}"
done
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader \
    | sed 's/^/# gpu: /'

# The kernels link the CUDA 13 runtime, which needs an R580 or newer driver. An older (or missing) driver would
# make every CUDA call fail with "insufficient driver"; say so up front instead of running a GPU suite without a GPU.
MIN_DRIVER=580
driver_version() {
    local v=""
    if command -v nvidia-smi >/dev/null 2>&1; then
        v=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n1 | tr -d ' ')
    fi
    if [ -z "$v" ] && [ -r /proc/driver/nvidia/version ]; then
        # "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.65.06  ..."
        v=$(grep -o -m1 -E '[0-9]{3,}\.[0-9]+(\.[0-9]+)?' /proc/driver/nvidia/version | head -n1)
    fi
    echo "$v"
}
DRIVER=$(driver_version)
if [ -z "$DRIVER" ]; then
    echo "ERROR: no NVIDIA driver found (nvidia-smi gave no driver version and /proc/driver/nvidia/version is absent);" \
         "this bundle needs driver R$MIN_DRIVER or newer for the CUDA 13 runtime" >&2
    exit 3
fi
if [ "${DRIVER%%.*}" -lt "$MIN_DRIVER" ] 2>/dev/null || ! [[ "${DRIVER%%.*}" =~ ^[0-9]+$ ]]; then
    echo "ERROR: NVIDIA driver $DRIVER found; the CUDA 13 runtime in this bundle needs R$MIN_DRIVER or newer." \
         "Upgrade the driver (or install the CUDA forward-compatibility package) and rerun." >&2
    exit 3
fi
echo "# driver: $DRIVER (R$MIN_DRIVER+ needed)"

# A GPU run must not pass by skipping: gpu-tagged tests fail, naming the cause, when CUDA is unusable.
JOPTS=(-Xmx8g "-Dorg.bytedeco.javacpp.cachedir=$HERE/.javacpp-cache" -Dtorus.requireGpu=true)

run_tests() {
    local filter=("$@")
    "$JAVA" "${JOPTS[@]}" -Dtorus.worker.classpath="$CP" -jar "$CONSOLE" execute --class-path "$CP" --select-package dev.torus "${filter[@]}" \
        --reports-dir "$RESULTS/junit" --details=tree --disable-banner --fail-if-no-tests
}

# Quantize/cast kernels against a device copy, then PyTorch's peers on the same device: first bit for bit on a
# dumped input, then the same sweep and timing rule, joined with the Torus rows of this run.
run_bench() {
    local args=("$@") st=0 pydev=cuda
    [ ${#args[@]} -eq 0 ] && args=(--device cuda)
    case " ${args[*]} " in *" --device cpu "*|*" --device=cpu "*) pydev=cpu ;; esac
    "$JAVA" "${JOPTS[@]}" -cp "$CP" dev.torus.cli.TorusBench quant --json "$RESULTS/quant.jsonl" \
        --dump "$RESULTS/quant-dump" "${args[@]}" || st=$?
    if python3 -c 'import torch' 2>/dev/null; then
        local peer=(--device "$pydev" --json "$RESULTS/quant-torch.jsonl")
        [ -d "$RESULTS/quant-dump" ] && peer+=(--check "$RESULTS/quant-dump")
        [ -s "$RESULTS/quant.jsonl" ] && peer+=(--torus-json "$RESULTS/quant.jsonl")
        python3 "$HERE/baselines/torch_quant.py" "${peer[@]}" || st=$?
    else
        echo "# PyTorch not importable: torch comparison skipped"
    fi
    return $st
}

# NCCL all-reduce sweep at world size 1 (per-call overhead), then PyTorch's peer on the same GPU.
run_comm_bench() {
    "$JAVA" "${JOPTS[@]}" -cp "$CP" dev.torus.cli.TorusBench allreduce --backend nccl --nproc 1 -b 4 -e 64MiB \
        --min-time 0.2 --json "$RESULTS/allreduce-nccl.jsonl"
    if python3 -c 'import torch, torch.distributed' 2>/dev/null; then
        echo "# torch.distributed.all_reduce (nccl, world size 1), same sweep and timing rule"
        RANK=0 WORLD_SIZE=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=29511 \
            python3 "$HERE/baselines/torch_allreduce.py" 4 67108864 0.2 | tee "$RESULTS/allreduce-torch.jsonl"
    else
        echo "# PyTorch not importable: torch comparison skipped"
    fi
}

# Checkpoint policies on the GPU, then the same MLP under torch.utils.checkpoint.
run_recompute_bench() {
    "$JAVA" "${JOPTS[@]}" -cp "$CP" dev.torus.cli.TorusBench recompute --device cuda \
        --json "$RESULTS/recompute-cuda.jsonl"
    if python3 -c 'import torch' 2>/dev/null; then
        echo "# torch.utils.checkpoint, same MLP, step and timing rule"
        python3 "$HERE/baselines/torch_checkpoint.py" 32 512 256 0.1 5 3 | tee "$RESULTS/recompute-torch.jsonl"
    else
        echo "# PyTorch not importable: torch comparison skipped"
    fi
}

# The demo on the GPU, then PyTorch training the same MLP on one GPU with the same batch, steps and timing rule.
run_demo() {
    local st
    echo "# ./torus demo on the GPU: NCCL, one worker per GPU, fp32 gradients (compressed hooks are CPU-only)"
    "$JAVA" -Djava.awt.headless=true -cp "$CP" dev.torus.cli.TorusDemo --device cuda --hook none \
        --out "$RESULTS/demo" 2>&1 | tee "$RESULTS/demo.txt"
    st="${PIPESTATUS[0]}"
    if python3 -c 'import torch' 2>/dev/null; then
        local summary=()
        [ -f "$RESULTS/demo/summary.json" ] && summary=(--torus-summary "$RESULTS/demo/summary.json")
        python3 "$HERE/baselines/torch_demo_train.py" --device cuda "${summary[@]}" | tee "$RESULTS/demo-torch.txt"
    else
        echo "# PyTorch not importable: torch comparison skipped"
    fi
    return "$st"
}

mode="${1:-all}"
[ $# -gt 0 ] && shift
status=0
case "$mode" in
    tests) run_tests --include-tag gpu || status=$? ;;
    alltests) run_tests || status=$? ;;
    bench) run_bench "$@" || status=$? ;;
    commbench) run_comm_bench || status=$? ;;
    recompute) run_recompute_bench || status=$? ;;
    demo) run_demo || status=$? ;;
    all)
        run_tests --include-tag gpu || status=$?
        run_bench "$@" || status=$?
        run_comm_bench || status=$?
        run_recompute_bench || status=$?
        run_demo || status=$?
        ;;
    *) echo "usage: $0 [all|tests|alltests|bench [options]|commbench|recompute|demo]" >&2; exit 2 ;;
esac
echo "# exit status: $status"
exit $status
