#!/usr/bin/env bash
# Every strategy of a bundle through a real split-server on loopback over the whole Fashion-MNIST
# test set, next to the accuracy the exporter measured in Python (in-process head -> 8-bit tail).
#   benchmarks/accuracy_through_server.sh [BUNDLE_DIR (models/fmnist-resnet)] [LIMIT (10000)]
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE=${1:-models/fmnist-resnet}
LIMIT=${2:-10000}
bash tools/build.sh >/dev/null
BIN=build/release/tools
DATA=/usr/share/datasets/fashion-mnist
OUT=build/bench/accuracy
mkdir -p "$OUT"
exec {SERVER_OUT}< <(exec "$BIN/split-server" --models "$BUNDLE" --listen 127.0.0.1:0 --threads 1 --log-level warn)
SERVER_PID=$!
trap 'kill "$SERVER_PID" 2>/dev/null || true' EXIT
read -r -t 120 line <&"$SERVER_OUT" || { echo "split-server did not start" >&2; exit 1; }
PORT=${line##* }
STRATEGIES=$(/usr/bin/python3 -c "import json,sys; m=json.load(open('$BUNDLE/manifest.json')); print(' '.join([s['id'] for s in m['splits']] + ['local', 'offload']))")
for s in $STRATEGIES; do
  echo "== $s" >&2
  "$BIN/split-client" --server "127.0.0.1:$PORT" --bundle "$BUNDLE" --split "$s" --quiet \
    --input "$DATA/t10k-images-idx3-ubyte.gz" --labels "$DATA/t10k-labels-idx1-ubyte.gz" \
    --limit "$LIMIT" --json "$OUT/$s.json" >&2
done
kill -TERM "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; trap - EXIT
/usr/bin/python3 - "$BUNDLE" "$OUT" $STRATEGIES <<'PY'
import json, sys
bundle, out, strategies = sys.argv[1], sys.argv[2], sys.argv[3:]
m = json.load(open(f"{bundle}/manifest.json"))
ref = {s["id"]: s["accuracy"]["codec"] for s in m["splits"]}
ref["local"] = ref["offload"] = m["accuracy"]["full"]
print("| strategy | requests | failures | top-1 through server | top-1 in-process (export) | difference | wire B/request | total ms p50 | p90 | p99 |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for s in strategies:
    r = json.load(open(f"{out}/{s}.json"))
    t = r["latency_ms"]["total"]
    print(f"| `{s}` | {r['requests']} | {r['failures']} | {r['accuracy']:.2f}% | {ref[s]:.2f}% | "
          f"{r['accuracy'] - ref[s]:+.2f} | {r['wire_bytes_per_request']:.0f} | {t['p50']:.2f} | {t['p90']:.2f} | {t['p99']:.2f} |")
PY
