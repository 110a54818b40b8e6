#!/usr/bin/env bash
# Builds a self-contained Torus bundle for a GPU host that has no JDK or Maven:
#   OUT/jre/         a jlinked Java runtime
#   OUT/lib/         Torus jars (JNI libraries in the linux-x86_64 jar), dependencies, test classes, JUnit console
#   OUT/native/      libgloo.so.0 and the libraries it needs (GPU hosts rarely have Gloo)
#   OUT/run.sh       finds CUDA/NCCL libraries on the host, runs the gpu tests and the benchmarks
#   OUT.tar.xz       the same tree as one archive (jars stored uncompressed inside, so xz
#                    compresses them together); this is what travels, and it must stay
#                    under 60 MiB. On the host: tar xJf gpu-bundle.tar.xz && gpu-bundle/run.sh
#                    (or python3 -c "import tarfile; tarfile.open('gpu-bundle.tar.xz').extractall()")
# Usage: tools/gpu-bundle.sh [OUT]     (default: dist/gpu-bundle)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/dist/gpu-bundle}"
JUNIT_CONSOLE="org.junit.platform:junit-platform-console-standalone:1.11.4"
LIMIT_MIB=60

cd "$ROOT"
rm -rf torus-cli/target/lib   # stale dependency jars would end up in the bundle
mvn -B -q install -DskipTests
rm -rf "$OUT"
mkdir -p "$OUT/lib"
mvn -B -q dependency:copy -Dartifact="$JUNIT_CONSOLE" -DoutputDirectory="$OUT/lib"
cp torus-cli/target/torus-cli-*.jar torus-cli/target/lib/*.jar tests/target/torus-tests-*-tests.jar "$OUT/lib/"
# the JCuda interop module and JCuda's jars, for its gpu tests
cp torus-jcuda/target/torus-jcuda-*.jar "$OUT/lib/"
mvn -B -q dependency:copy-dependencies -pl torus-jcuda -DincludeGroupIds=org.jcuda -DoutputDirectory="$OUT/lib"
# Slim the two largest native jars to what a linux-x86_64 GPU host loads.
python3 - "$OUT/lib" <<'PY'
import glob, os, sys, zipfile
lib = sys.argv[1]
keep_cuda = ("libjnicudart.so", "libjninccl.so", "libjnicublas.so")
keep_blas = ("libopenblas.so.0", "libjniopenblas_nolapack.so", "libgfortran.so.5", "libquadmath.so.0", "libgcc_s.so.1")
def slim(path, keep):
    tmp = path + ".tmp"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            if keep(item.filename):
                dst.writestr(item, src.read(item.filename))
    os.replace(tmp, path)
for p in glob.glob(os.path.join(lib, "cuda-*-linux-x86_64.jar")):
    slim(p, lambda n: not n.endswith(".so") or os.path.basename(n) in keep_cuda)
for p in glob.glob(os.path.join(lib, "openblas-*-linux-x86_64.jar")):
    slim(p, lambda n: not (n.endswith(".so") or ".so." in n or "/include/" in n) or os.path.basename(n) in keep_blas)
for p in glob.glob(os.path.join(lib, "openblas-*.jar")):
    if not p.endswith("linux-x86_64.jar"):   # the Java side: only the no-LAPACK binding is used
        slim(p, lambda n: not n.startswith("org/bytedeco/openblas/global/openblas") or "openblas_nolapack" in n)
for p in glob.glob(os.path.join(lib, "jcuda-natives-*.jar")):   # runtime and driver bindings; not NVRTC/PTX compiler
    slim(p, lambda n: not n.endswith(".so") or "JCudaRuntime" in n or "JCudaDriver" in n)
for p in glob.glob(os.path.join(lib, "snappy-java-*.jar")):
    slim(p, lambda n: not n.startswith("org/xerial/snappy/native/") or "/Linux/x86_64/" in n or n.endswith("/"))
# store every jar uncompressed: the xz archive then compresses all of them together
for p in glob.glob(os.path.join(lib, "*.jar")):
    tmp = p + ".tmp"
    with zipfile.ZipFile(p) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            info = zipfile.ZipInfo(item.filename, item.date_time)
            info.external_attr = item.external_attr
            info.compress_type = zipfile.ZIP_STORED
            dst.writestr(info, data)
    os.replace(tmp, p)
PY
mkdir -p "$OUT/native"
for lib in libgloo.so.0 libhiredis.so.0.14 libibverbs.so.1 libnl-route-3.so.200 libnl-3.so.200; do
    path=$(ldconfig -p | awk -v l="$lib" '$1 == l {print $NF; exit}')
    [ -n "$path" ] || { echo "missing $lib (apt-get install libgloo-dev)" >&2; exit 1; }
    cp -L "$path" "$OUT/native/"
done
# modules: jdeps --print-module-deps over the jars (less java.security.jgss: Kerberos for
# ZooKeeper SASL is not needed on the GPU host), plus jdk.zipfs for the JUnit console and
# java.desktop for the demo's PNG plot
jlink --add-modules java.base,java.desktop,java.logging,java.management,java.naming,java.security.sasl,java.xml,jdk.unsupported,jdk.zipfs \
      --strip-debug --strip-native-debug-symbols=exclude-debuginfo-files --no-header-files --no-man-pages \
      --compress=0 --output "$OUT/jre"
cp tools/gpu-host-run.sh "$OUT/run.sh"
mkdir -p "$OUT/baselines"
cp tools/baselines/torch_*.py "$OUT/baselines/"
chmod +x "$OUT/run.sh"
git rev-parse --short HEAD > "$OUT/VERSION" 2>/dev/null || echo unknown > "$OUT/VERSION"

tar -C "$(dirname "$OUT")" -cf - "$(basename "$OUT")" | xz -T0 -6 > "$OUT.tar.xz"
size_kib=$(( $(stat -c %s "$OUT.tar.xz") / 1024 ))
echo "bundle: $OUT.tar.xz ($((size_kib / 1024)) MiB; unpacked $(du -sm "$OUT" | cut -f1) MiB)"
if [ "$size_kib" -gt $((LIMIT_MIB * 1024)) ]; then
    echo "bundle archive is larger than ${LIMIT_MIB} MiB" >&2
    exit 1
fi
