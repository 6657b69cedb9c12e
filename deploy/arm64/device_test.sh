#!/usr/bin/env bash
# make device-test-arm64: the device side on ARM64, emulated by qemu-user. Builds a Debian 12 arm64 sysroot from
# Debian's packages, a venv there with the aarch64 wheels pinned in deploy/requirements/debian12-arm64.txt and the
# device wheel, then runs neurohand doctor, verify and a replay on a bundle and session made on this (x86-64)
# machine, and checks that every engine decodes the same commands, positions and class probabilities on both
# machines within TOLERANCE. Usage: device_test.sh WHEEL X86_PYTHON [BUILD_DIR]
set -euo pipefail
WHEEL=$1
X86=$2
BUILD=${3:-build/arm64}
TOLERANCE=1e-5
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
for tool in qemu-aarch64-static dpkg-deb apt-get; do
    command -v $tool >/dev/null || { echo "device-test-arm64 needs $tool: apt-get install qemu-user-static" >&2; exit 2; }
done
mkdir -p "$BUILD"
BUILD=$(cd "$BUILD" && pwd)
SYSROOT=$BUILD/root
Q="qemu-aarch64-static -L $SYSROOT"
if [ ! -x "$SYSROOT/usr/bin/python3.11" ]; then
    echo "== the arm64 sysroot: Debian 12's python3.11 and what it needs"
    dpkg --print-foreign-architectures | grep -qx arm64 || { dpkg --add-architecture arm64 && apt-get update -qq; }
    mkdir -p "$BUILD/debs" && cd "$BUILD/debs"
    apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces \
        --no-enhances python3.11:arm64 libstdc++6:arm64 libgomp1:arm64 | grep -E '^[a-z0-9].*:arm64$' | sort -u > pkgs
    apt-get download -q $(cat pkgs) >/dev/null
    rm -rf "$SYSROOT.partial" && mkdir "$SYSROOT.partial"
    for deb in *.deb; do dpkg-deb -x "$deb" "$SYSROOT.partial"; done
    mv "$SYSROOT.partial" "$SYSROOT"
    cd "$ROOT"
fi
VENV=$BUILD/venv
echo "== the venv: aarch64 wheels and the device wheel"
rm -rf "$VENV"
$Q "$SYSROOT/usr/bin/python3.11" -m venv --copies --without-pip "$VENV"
# pip runs here, not under the emulator: it only unpacks the aarch64 wheels into the venv
"$X86" -m pip install -q --target "$VENV/lib/python3.11/site-packages" \
    --platform manylinux_2_28_aarch64 --platform manylinux2014_aarch64 --python-version 3.11 --implementation cp \
    --only-binary=:all: -r "$ROOT/deploy/requirements/debian12-arm64.txt" "$WHEEL"
PY="$Q $VENV/bin/python3.11"
$PY -c "import platform, sys, numpy, scipy, onnxruntime, neurohand; print('python', platform.python_version(), \
platform.machine(), 'numpy', numpy.__version__, 'scipy', scipy.__version__, 'onnxruntime', onnxruntime.__version__, \
'neurohand', neurohand.__version__)"
CASE=$BUILD/case
if [ ! -f "$CASE/b/bundle.json" ]; then
    echo "== a bundle and a session, made on this machine"
    rm -rf "$CASE" && mkdir -p "$CASE"
    "$X86" -m neurohand simulate --out "$CASE/train.h5" --minutes 1 --channels 8 --fs-hz 4000 --seed 3 >/dev/null
    "$X86" -m neurohand simulate --out "$CASE/s.h5" --minutes 0.3 --channels 8 --fs-hz 4000 --seed 4 >/dev/null
    "$X86" -m neurohand train "$CASE/train.h5" --out "$CASE/m" --epochs 2 --hidden 32 --quiet >/dev/null
    "$X86" -m neurohand export "$CASE/m" --out "$CASE/b" >/dev/null
fi
echo "== neurohand doctor (arm64)"
# no GPU here: "NOT READY" (exit 1) for TensorRT, and the engines that decode meanwhile
doctor=$($PY -m neurohand doctor --bundle "$CASE/b" || true)
echo "$doctor" | tail -1
echo "$doctor" | grep -q "decodes on: onnxruntime, numpy"
echo "== neurohand verify (arm64)"
$PY -m neurohand verify "$CASE/b" --session "$CASE/s.h5" | tail -1
echo "== neurohand run, a replay (arm64)"
$PY -m neurohand run --bundle "$CASE/b" --source "replay:$CASE/s.h5" --fast --engine onnxruntime | tail -1
echo "== the same decoding on both machines"
for engine in numpy onnxruntime; do
    "$X86" "$HERE/decode.py" "$CASE/b" "$CASE/s.h5" $engine "$BUILD/x86-$engine.npz"
    $PY "$HERE/decode.py" "$CASE/b" "$CASE/s.h5" $engine "$BUILD/arm64-$engine.npz"
done
"$X86" - "$BUILD" "$TOLERANCE" <<'PY'
import sys

import numpy as np

build, tol = sys.argv[1], float(sys.argv[2])
bad = 0
for engine in ("numpy", "onnxruntime"):
    a, b = np.load("{}/x86-{}.npz".format(build, engine)), np.load("{}/arm64-{}.npz".format(build, engine))
    for key in ("commands", "positions", "probabilities"):
        d = float(np.max(np.abs(a[key] - b[key]))) if a[key].shape == b[key].shape else float("inf")
        ok = d <= tol
        bad += not ok
        print("{:<12} {:<14} max |x86 - arm64| {:.2e}  {}".format(engine, key, d, "PASS" if ok else "FAIL"))
print("PASS: ARM64 decodes as x86-64 within {:g}".format(tol) if not bad else "FAIL: {} differ".format(bad))
sys.exit(1 if bad else 0)
PY
