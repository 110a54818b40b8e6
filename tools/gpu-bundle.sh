#!/usr/bin/env bash
# Builds a self-contained Torus bundle for a GPU host that has no JDK or Maven:
#   OUT/jre/         a jlinked Java runtime
#   OUT/lib/         Torus jars (JNI library inside), dependencies, test classes, JUnit console
#   OUT/run.sh       finds CUDA/NCCL libraries on the host, runs the gpu tests and the benchmarks
# Usage: tools/gpu-bundle.sh [OUT]     (default: dist/gpu-bundle; must stay under 60 MiB)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/dist/gpu-bundle}"
JUNIT_CONSOLE="org.junit.platform:junit-platform-console-standalone:1.11.4"
LIMIT_MIB=60

cd "$ROOT"
mvn -B -q install -DskipTests
rm -rf "$OUT"
mkdir -p "$OUT/lib"
mvn -B -q dependency:copy -Dartifact="$JUNIT_CONSOLE" -DoutputDirectory="$OUT/lib"
cp java-api/target/torus-api-*.jar java-api/target/lib/*.jar tests/target/torus-tests-*-tests.jar "$OUT/lib/"
jlink --add-modules java.base,java.logging,java.management,java.xml,jdk.unsupported,jdk.zipfs \
      --strip-debug --no-header-files --no-man-pages --compress=2 --output "$OUT/jre"
cp tools/gpu-host-run.sh "$OUT/run.sh"
chmod +x "$OUT/run.sh"
git rev-parse --short HEAD > "$OUT/VERSION" 2>/dev/null || echo unknown > "$OUT/VERSION"

size_kib=$(du -sk "$OUT" | cut -f1)
echo "bundle: $OUT ($((size_kib / 1024)) MiB)"
if [ "$size_kib" -gt $((LIMIT_MIB * 1024)) ]; then
    echo "bundle is larger than ${LIMIT_MIB} MiB" >&2
    exit 1
fi
