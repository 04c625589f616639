#!/usr/bin/env bash
# Server throughput of split-server against the Python peer (pickle over TCP, threaded server:
# benchmarks/pickle_baseline.py --throughput) on the same bundle and split, 8 closed-loop
# clients each, alternating over rounds on the same machine; prints per-round requests per
# second and their ratio, and the median ratio.
#   benchmarks/peer_throughput.sh [--bundle models/fmnist-resnet] [--split bf2] [--rounds 3] [--seconds 20]
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE=models/fmnist-resnet SPLIT=bf2 ROUNDS=3 SECONDS_=20 CLIENTS=8
while (($#)); do
  case $1 in
    --bundle) BUNDLE=$2; shift 2 ;;
    --split) SPLIT=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --seconds) SECONDS_=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    *) echo "usage: $0 [--bundle DIR] [--split ID] [--rounds N] [--seconds S] [--clients C]" >&2; exit 2 ;;
  esac
done
BIN=build/release/benchmarks/bench-throughput
[[ -x $BIN ]] || { echo "peer_throughput: build first (tools/build.sh)" >&2; exit 1; }
OUT=build/peer-throughput && mkdir -p "$OUT"
for ((r = 1; r <= ROUNDS; r++)); do
  echo "== round $r/$ROUNDS: libsplit (2 workers x 1 LibTorch thread)" >&2
  "$BIN" --bundle "$BUNDLE" --split "$SPLIT" --clients "$CLIENTS" --workers 2 --torch-threads 1 --batch 2 \
    --seconds "$SECONDS_" --warmup-s 3 --rounds 1 --json "$OUT/libsplit-$r.json" > /dev/null
  echo "== round $r/$ROUNDS: Python peer (a thread per connection, 1 LibTorch thread per forward)" >&2
  /usr/bin/python3 benchmarks/pickle_baseline.py --bundle "$BUNDLE" --split "$SPLIT" --throughput --clients "$CLIENTS" \
    --seconds "$SECONDS_" --warmup-s 3 --threads 1 --json "$OUT/peer-$r.json" > /dev/null
done
/usr/bin/python3 - "$OUT" "$ROUNDS" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
ratios = []
print(f"{'round':>5} {'libsplit req/s':>15} {'p99 ms':>8} {'peer req/s':>11} {'p99 ms':>8} {'ratio':>7}")
for r in range(1, rounds + 1):
    l = json.load(open(f"{out}/libsplit-{r}.json"))["modes"]["daemon-b1"]
    p = json.load(open(f"{out}/peer-{r}.json"))
    ratio = l["rps_median"] / p["rps"]
    ratios.append(ratio)
    print(f"{r:>5} {l['rps_median']:>15.1f} {l['p99_ms_median']:>8.2f} {p['rps']:>11.1f} {p['round_trip_ms']['p99']:>8.2f} {ratio:>7.2f}")
print(f"libsplit / peer server throughput: median {statistics.median(ratios):.2f} over {rounds} rounds (min {min(ratios):.2f})")
PY
