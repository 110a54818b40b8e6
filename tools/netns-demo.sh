#!/usr/bin/env bash
# The data-parallel demo's workers across test hosts (network namespaces, tools/netns-cluster.sh):
# ZooKeeper (`torus zookeeper`) on host 0, and on each of hosts 1..NODES a torusrun agent with
# NPROC workers, meeting through ZooKeeper with a job secret. Runs once per gradient hook and
# prints each run's accuracy, loss, step time and bytes, then the step-time ratio of each hook
# to the first. Needs root. Everything it creates is removed at exit, also on failure or Ctrl-C.
#
#   tools/netns-demo.sh [--nodes 2] [--nproc 2] [--rate 1gbit] [--hooks "none int8"] [-- DEMO OPTIONS]
#
# DEMO OPTIONS are the demo worker's (--epochs, --batch, --width, --blocks, --policy, ...);
# the default here is --epochs 1. Results and logs go to ./torus-netns-demo/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NODES=2
NPROC=2
RATE=""
HOOKS="none int8"
DEMO=()
while [ $# -gt 0 ]; do
    case "$1" in
        --nodes) NODES=${2:?--nodes needs a value}; shift 2 ;;
        --nproc) NPROC=${2:?--nproc needs a value}; shift 2 ;;
        --rate) RATE=${2:?--rate needs a value}; shift 2 ;;
        --hooks) HOOKS=${2:?--hooks needs a value}; shift 2 ;;
        --) shift; DEMO=("$@"); break ;;
        *) echo "netns-demo.sh: unknown argument '$1' (see the header of this script)" >&2; exit 2 ;;
    esac
done
[[ "$NODES" =~ ^[1-9][0-9]?$ ]] || { echo "netns-demo.sh: --nodes must be 1..99, got '$NODES'" >&2; exit 2; }
[[ "$NPROC" =~ ^[1-9][0-9]?$ ]] || { echo "netns-demo.sh: --nproc must be 1..99, got '$NPROC'" >&2; exit 2; }
[ ${#DEMO[@]} -gt 0 ] || DEMO=(--epochs 1)
if [ "$(id -u)" != 0 ]; then
    echo "netns-demo.sh: needs root (network namespaces)" >&2
    exit 2
fi

export TORUS_NETNS_PREFIX=${TORUS_NETNS_PREFIX:-torusdemo}
CLUSTER="$ROOT/tools/netns-cluster.sh"
OUT="$PWD/torus-netns-demo"
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    "$CLUSTER" down || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$ROOT/torus" zookeeper --help >/dev/null   # builds on first use
CP="$ROOT/torus-cli/target/torus-cli-0.1.0-SNAPSHOT.jar"
for j in "$ROOT"/torus-cli/target/lib/*.jar; do CP="$CP:$j"; done

"$CLUSTER" up $((NODES + 1)) $RATE
ZK_ADDR=$("$CLUSTER" addr 0)
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$WORK/secret"
chmod 600 "$WORK/secret"
mkdir -p "$OUT"

"$CLUSTER" exec 0 java -Xmx256m -cp "$CP" dev.torus.cli.TorusZooKeeper --bind "$ZK_ADDR" --port 2181 \
    > "$OUT/zookeeper.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 120); do
    grep -q "serving at" "$OUT/zookeeper.log" 2>/dev/null && break
    kill -0 "${PIDS[0]}" 2>/dev/null || { cat "$OUT/zookeeper.log" >&2; exit 1; }
    sleep 0.5
done
grep -q "serving at" "$OUT/zookeeper.log" || { echo "netns-demo.sh: ZooKeeper did not start in 60 s" >&2; exit 1; }

echo "netns-demo: ZooKeeper on host 0 ($ZK_ADDR:2181); $NODES worker hosts x $NPROC workers; link ${RATE:-unshaped}; demo ${DEMO[*]}"
printf '%-10s %8s %9s %10s %10s %12s %14s %9s\n' hook accuracy "loss" "samples/s" "train s" "step ms" "bytes rank 0" transport
first_step=""
summary=()
for hook in $HOOKS; do
    run_id="netns-demo-$$-$hook"
    mkdir -p "$OUT/$hook"
    rm -f "$OUT/$hook/rank0.properties"
    agents=()
    for n in $(seq 1 "$NODES"); do
        addr=$("$CLUSTER" addr "$n")
        TORUS_GLOO_HOSTNAME="$addr" TORUS_TRANSPORT=auto \
            "$CLUSTER" exec "$n" java -Xmx256m -cp "$CP" dev.torus.cli.TorusRun --nnodes "$NODES" \
            --nproc-per-node "$NPROC" --rdzv-endpoint "$ZK_ADDR:2181" --run-id "$run_id" \
            --secret-file "$WORK/secret" --rdzv-timeout 120 dev.torus.cli.demo.DemoWorker \
            --result "$OUT/$hook/rank0.properties" --hook "$hook" "${DEMO[@]}" > "$OUT/$hook/agent-$n.log" 2>&1 &
        agents+=($!)
        PIDS+=($!)
    done
    rc=0
    for a in "${agents[@]}"; do wait "$a" || rc=$?; done
    if [ "$rc" != 0 ] || [ ! -f "$OUT/$hook/rank0.properties" ]; then
        echo "netns-demo.sh: the $hook run failed (exit $rc); last lines of each agent:" >&2
        for n in $(seq 1 "$NODES"); do tail -5 "$OUT/$hook/agent-$n.log" >&2; done
        exit 1
    fi
    p="$OUT/$hook/rank0.properties"
    get() { grep "^$1=" "$p" | cut -d= -f2; }
    steps=$(get stepLoss | tr ',' '\n' | wc -l)
    step_ms=$(awk -v s="$(get trainSeconds)" -v n="$steps" 'BEGIN { printf "%.1f", 1000 * s / n }')
    printf '%-10s %8.4f %9.4f %10.0f %10.1f %12s %14s %9s\n' "$hook" "$(get testAccuracy)" "$(get trainLoss)" \
        "$(get samplesPerSecond)" "$(get trainSeconds)" "$step_ms" "$(get bytesSent)" "$(get transport)"
    if [ -z "$first_step" ]; then
        first_step=$step_ms
        first_hook=$hook
    else
        summary+=("$(awk -v a="$first_step" -v b="$step_ms" -v h="$hook" -v f="$first_hook" \
            'BEGIN { printf "step time %s / step time %s = %.2f (above 1: %s is faster)", f, h, a / b, h }')")
    fi
done
for s in "${summary[@]}"; do echo "netns-demo: $s"; done
