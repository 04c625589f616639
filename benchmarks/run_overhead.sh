#!/usr/bin/env bash
# Runtime overhead on loopback, libsplit vs the pickle-over-TCP Python baseline, in one run:
# the committed Fashion-MNIST bundle and a generated ResNet-50 224x224 bundle (random weights,
# BottleFit-style bottleneck; latency only). Each is run twice: with the threads free to use
# every core ("shared"), and with the whole benchmark confined to one core ("one-core", taskset),
# where a thread hand-off is a context switch instead of a wake-up of another, idle, core; and
# once more on both cores with libsplit's client and server busy-polling ("busy-poll": neither
# sleeps while it waits, and the server runs the tail on the I/O thread that read the request).
# bench-handoff gives the floor of the hand-offs themselves (no libsplit code) in the first two.
# Results: build/bench/*.json and a summary at the end.
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
H=build/release/benchmarks/bench-handoff
for setting in shared one-core busy-poll; do
  run=()
  busy=()
  [[ $setting == one-core ]] && run=(taskset -c 0)
  [[ $setting == busy-poll ]] && busy=(--busy-poll-us 250000 --inline-tail-max-us 250000)
  if [[ $setting != busy-poll ]]; then
    echo "== [$setting] hand-off floor"
    "${run[@]}" "$H" --requests "$N" | tee "build/bench/floor-$setting.txt"
  fi
  echo "== [$setting] libsplit, fmnist-resnet"
  "${run[@]}" "$B" --bundle models/fmnist-resnet --requests "$N" "${busy[@]}" --json "build/bench/libsplit-fmnist-$setting.json"
  echo "== [$setting] pickle baseline, fmnist-resnet"
  "${run[@]}" /usr/bin/python3 benchmarks/pickle_baseline.py --bundle models/fmnist-resnet --requests "$N" \
    --json "build/bench/pickle-fmnist-$setting.json"
  echo "== [$setting] libsplit, resnet50 (random weights)"
  "${run[@]}" "$B" --bundle build/models/resnet50 --requests "$NR" --warmup 5 "${busy[@]}" --json "build/bench/libsplit-resnet50-$setting.json"
  echo "== [$setting] pickle baseline, resnet50 (random weights)"
  "${run[@]}" /usr/bin/python3 benchmarks/pickle_baseline.py --bundle build/models/resnet50 --requests "$NR" --warmup 5 \
    --json "build/bench/pickle-resnet50-$setting.json"
done
/usr/bin/python3 - <<'PY'
import json
import os
for setting in ("shared", "one-core", "busy-poll"):
    if os.path.exists(f"build/bench/floor-{setting}.txt"):
        print(f"[{setting}] {open(f'build/bench/floor-{setting}.txt').read().strip()}")
    for name in ("fmnist", "resnet50"):
        a = json.load(open(f"build/bench/libsplit-{name}-{setting}.json"))
        b = json.load(open(f"build/bench/pickle-{name}-{setting}.json"))
        la, lb = a["us"]["overhead"]["p50"], b["us"]["overhead"]["p50"]
        print(f"[{setting}] {name}: overhead p50 libsplit {la:.1f} us ({a['requests']} requests) vs pickle "
              f"{lb:.1f} us ({b['requests']} requests): {lb / la:.1f}x less; "
              f"wire {a['request_bytes']} B vs {b['wire_bytes']} B (payload {a['payload_bytes']} B)")
PY
