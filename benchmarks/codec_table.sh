#!/usr/bin/env bash
# Bytes per image and top-1 for every codec on every split of a bundle, through a real
# split-server on loopback (README's codec table).
#   benchmarks/codec_table.sh [BUNDLE_DIR (models/fmnist-resnet)] [LIMIT (10000)]
# Splits with entropy tables run q8, q8rans and q8zstd; a learned (variational) split runs its
# own codec (s8rans); every other split its manifest codec and q8zstd.
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE=${1:-models/fmnist-resnet}
LIMIT=${2:-10000}
bash tools/build.sh >/dev/null
BIN=build/release/tools
DATA=/usr/share/datasets/fashion-mnist
OUT=build/bench/codecs
mkdir -p "$OUT"
exec {SERVER_OUT}< <(exec "$BIN/split-server" --models "$BUNDLE" --listen 127.0.0.1:0 --log-level warn)
SERVER_PID=$!
trap 'kill "$SERVER_PID" 2>/dev/null || true' EXIT
read -r -t 120 line <&"$SERVER_OUT" || { echo "split-server did not start" >&2; exit 1; }
PORT=${line##* }
RUNS=$(/usr/bin/python3 - "$BUNDLE" <<'PY'
import json, sys
m = json.load(open(f"{sys.argv[1]}/manifest.json"))
for s in m["splits"]:
    if s["codec"] == "s8rans":
        codecs = ["s8rans"]
    elif s.get("tables") and s["codec"] in ("q8", "q8rans"):
        codecs = ["q8", "q8rans", "q8zstd"]
    else:
        codecs = [s["codec"], "q8zstd"]
    for c in codecs:
        print(f"{s['id']}:{c}")
PY
)
echo "== local (the teacher on the same images)" >&2
"$BIN/split-client" --bundle "$BUNDLE" --split local --quiet --input "$DATA/t10k-images-idx3-ubyte.gz" \
  --labels "$DATA/t10k-labels-idx1-ubyte.gz" --limit "$LIMIT" --json "$OUT/local.json" >&2
for run in $RUNS; do
  split=${run%%:*} codec=${run##*:}
  echo "== $split $codec" >&2
  "$BIN/split-client" --server "127.0.0.1:$PORT" --bundle "$BUNDLE" --split "$split" --codec "$codec" --quiet \
    --input "$DATA/t10k-images-idx3-ubyte.gz" --labels "$DATA/t10k-labels-idx1-ubyte.gz" \
    --limit "$LIMIT" --json "$OUT/$split-$codec.json" >&2
done
kill -TERM "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; trap - EXIT
/usr/bin/python3 - "$BUNDLE" "$OUT" $RUNS <<'PY'
import json, sys
bundle, out, runs = sys.argv[1], sys.argv[2], sys.argv[3:]
m = json.load(open(f"{bundle}/manifest.json"))
teacher = json.load(open(f"{out}/local.json"))["accuracy"]
splits = {s["id"]: s for s in m["splits"]}
plain = {}
print("| split | kind | codec | requests | payload B/image | vs plain 8-bit | wire B/request | top-1 | drop vs teacher |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|")
for run in runs:
    split, codec = run.split(":")
    r = json.load(open(f"{out}/{split}-{codec}.json"))
    n = 1
    for d in splits[split]["bottleneck"]["shape"]:
        n *= d
    q8 = n  # plain 8-bit: one byte per element
    if r["failures"]:
        print(f"| `{split}` | {splits[split]['kind']} | {codec} | {r['requests']} | {r['failures']} FAILURES |")
        continue
    print(f"| `{split}` | {splits[split]['kind']} | {codec} | {r['requests']} | {r['payload_bytes_per_request']:.1f} | "
          f"{100 * r['payload_bytes_per_request'] / q8:.0f}% | {r['wire_bytes_per_request']:.1f} | {r['accuracy']:.2f}% | "
          f"{teacher - r['accuracy']:.2f} |")
print(f"\nTeacher (full model, run locally on the same images): {teacher:.2f}%. 'vs plain 8-bit' divides by "
      "the split's own element count (one byte each at q8).")
PY
