#!/usr/bin/env bash
# Runtime overhead on loopback, libsplit vs the pickle-over-TCP Python baseline, in one run:
# the committed Fashion-MNIST bundle and a generated ResNet-50 224x224 bundle (random weights,
# BottleFit-style bottleneck; latency only). Results: build/bench/*.json.
#   benchmarks/run_overhead.sh [REQUESTS (1000)] [RESNET_REQUESTS (100)]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
NR=${2:-100}
bash tools/build.sh
mkdir -p build/bench
if [[ ! -f build/models/resnet50/manifest.json ]]; then
  /usr/bin/python3 tools/export_torchvision.py --arch resnet50 --split bottlefit --out build/models/resnet50
fi
B=build/release/benchmarks/bench-overhead
echo "== libsplit, fmnist-resnet"
"$B" --bundle models/fmnist-resnet --requests "$N" --json build/bench/libsplit-fmnist.json
echo "== pickle baseline, fmnist-resnet"
/usr/bin/python3 benchmarks/pickle_baseline.py --bundle models/fmnist-resnet --requests "$N" --json build/bench/pickle-fmnist.json
echo "== libsplit, resnet50 (random weights)"
"$B" --bundle build/models/resnet50 --requests "$NR" --warmup 5 --json build/bench/libsplit-resnet50.json
echo "== pickle baseline, resnet50 (random weights)"
/usr/bin/python3 benchmarks/pickle_baseline.py --bundle build/models/resnet50 --requests "$NR" --warmup 5 --json build/bench/pickle-resnet50.json
/usr/bin/python3 - <<'PY'
import json
for name in ("fmnist", "resnet50"):
    a = json.load(open(f"build/bench/libsplit-{name}.json"))
    b = json.load(open(f"build/bench/pickle-{name}.json"))
    la, lb = a["us"]["overhead"]["p50"], b["us"]["overhead"]["p50"]
    print(f"{name}: overhead p50 libsplit {la:.1f} us vs pickle {lb:.1f} us: {lb / la:.1f}x less; "
          f"wire {a['request_bytes']} B vs {b['wire_bytes']} B (payload {a['payload_bytes']} B)")
PY
