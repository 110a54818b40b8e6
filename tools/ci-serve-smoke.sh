#!/usr/bin/env bash
# Serves MODEL with ./torus serve on a free loopback port, waits until it is ready, asks for one prediction
# with curl, then stops the server with SIGTERM and checks that its replicas exited with it.
# Usage: tools/ci-serve-smoke.sh MODEL
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
model="$1"
name="$(basename "$model" .safetensors)"
log="$(mktemp)"
./torus serve "$model" --port 0 --min 1 --max 2 > "$log" 2>&1 &
pid=$!
cleanup() { kill -TERM "$pid" 2>/dev/null || true; rm -f "$log"; }
trap cleanup EXIT
url=""
for _ in $(seq 1 600); do
    url="$(grep -o 'at http://[0-9.]*:[0-9]*' "$log" | head -1 | cut -c4- || true)"
    [ -n "$url" ] && break
    kill -0 "$pid" 2>/dev/null || { echo "serve smoke: torus serve exited:"; cat "$log"; exit 1; }
    sleep 0.1
done
[ -n "$url" ] || { echo "serve smoke: no address printed"; cat "$log"; exit 1; }
for _ in $(seq 1 600); do
    curl -sf "$url/v2/models/$name/ready" >/dev/null && break
    sleep 0.1
done
curl -sf "$url/v2/models/$name/ready" >/dev/null || { echo "serve smoke: never ready"; cat "$log"; exit 1; }
data="$(python3 -c 'print(",".join(str(0.1 * i) for i in range(32)))')"
answer="$(curl -sf -H 'Content-Type: application/json' "$url/v2/models/$name/infer" \
    -d "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,32],\"datatype\":\"FP32\",\"data\":[$data]}]}")"
echo "serve smoke: $answer"
echo "$answer" | grep -q '"name":"class","datatype":"INT64","shape":\[1\],"data":\[[0-7]\]'
code="$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' "$url/v2/models/$name/infer" -d '{"inputs":[')"
[ "$code" = 400 ] || { echo "serve smoke: malformed JSON answered $code"; exit 1; }
replicas="$(pgrep -f "ReplicaMain.*--service $name" || true)"
kill -TERM "$pid"
for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then echo "serve smoke: torus serve did not exit on SIGTERM"; exit 1; fi
for r in $replicas; do
    for _ in $(seq 1 100); do kill -0 "$r" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$r" 2>/dev/null; then echo "serve smoke: replica $r outlived torus serve"; kill -9 "$r"; exit 1; fi
done
echo "serve smoke: ok ($url, replicas stopped with the server)"
