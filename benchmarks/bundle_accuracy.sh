#!/usr/bin/env bash
# Every strategy of a bundle (each split, the full model on the device, the pruned local models)
# over an image folder (class folders, e.g. a split-train bundle's val/ or test/), through a
# split-server on loopback: accuracy beside the manifest's, failures, wire and payload bytes.
#   bash benchmarks/bundle_accuracy.sh BUNDLE FOLDER [WORK]
set -euo pipefail
BUNDLE=$(cd "$1" && pwd) FOLDER=$2 WORK=${3:-build/bundle-accuracy}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/build/release/tools
PY=/usr/bin/python3
rm -rf "$WORK" && mkdir -p "$WORK/models"
ln -s "$BUNDLE" "$WORK/models/$(basename "$BUNDLE")"
exec {srv}< <(exec "$BIN/split-server" --models "$WORK/models" --listen 127.0.0.1:0 --log-level warn)
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
read -r -t 300 line <&"$srv" || { echo "bundle_accuracy: split-server did not start" >&2; exit 1; }
port=${line##* }
runs=$("$PY" -c "
import json, sys
m = json.load(open(sys.argv[1]))
print(' '.join([s['id'] for s in m['splits']] + ['local'] + [l['id'] for l in m.get('local', [])]))" "$BUNDLE/manifest.json")
for id in $runs; do
  start=$(date +%s)
  "$BIN/split-client" --server "127.0.0.1:$port" --bundle "$BUNDLE" --split "$id" --input "$FOLDER" --top-k 1 \
    --quiet --json "$WORK/$id.json" > "$WORK/$id.txt"
  echo "$id: $(( $(date +%s) - start )) s" >&2
done
"$PY" - "$BUNDLE/manifest.json" "$WORK" $runs <<'PY'
import json, sys
man, work, runs = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3:]
print(f"| strategy | codec | requests | failures | top-1 through split-client | manifest (val) | payload B | wire B |")
print("|---|---|---|---|---|---|---|---|")
for rid in runs:
    r = json.load(open(f"{work}/{rid}.json"))
    split = next((s for s in man["splits"] if s["id"] == rid), None)
    if split:
        want, codec = split["accuracy"]["codec"], split["codec"]
    elif rid == "local":
        want, codec = man["accuracy"]["full"], "-"
    else:
        want, codec = next(l for l in man["local"] if l["id"] == rid)["accuracy"], "-"
    run = r["runs"][0] if "runs" in r else r
    payload = run.get("payload_bytes_per_request", run.get("payload_bytes", 0))
    wire = run.get("wire_bytes_per_request", run.get("wire_bytes", 0))
    print(f"| {rid} | {codec} | {r['requests']} | {r['failures']} | {r['accuracy']:.2f}% | {want:.2f}% | "
          f"{payload:.1f} | {wire:.1f} |")
PY
