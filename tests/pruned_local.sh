#!/usr/bin/env bash
# The committed bundle's pruned local models, through split-client as a user runs them:
#  1. each reproduces the top-1 its manifest records, on the whole Fashion-MNIST test set;
#  2. the one at half the multiply-adds is within 1.5 points of the full model;
#  3. split-plan's recommendation reaches the dynamic selector (--plan): it is the one local model
#     weighed besides the full one, and every request is answered by one of the two (no server:
#     the device is offline, so only local candidates are available).
# usage: pruned_local.sh BUILD_DIR SOURCE_DIR WORK_DIR
set -euo pipefail
BUILD=$1 SRC=$2 WORK=$3
BIN=$BUILD/tools
BUNDLE=$SRC/models/fmnist-resnet
DATA=${LIBSPLIT_FMNIST_DIR:-/usr/share/datasets/fashion-mnist}
rm -rf "$WORK" && mkdir -p "$WORK"
PY=/usr/bin/python3

ids=$($PY -c "import json,sys; print(' '.join(l['id'] for l in json.load(open(sys.argv[1])).get('local', [])))" "$BUNDLE/manifest.json")
[[ -n $ids ]] || { echo "FAIL: $BUNDLE has no local models"; exit 1; }
for id in $ids; do
  "$BIN/split-client" --bundle "$BUNDLE" --split "$id" --input "$DATA/t10k-images-idx3-ubyte.gz" \
    --labels "$DATA/t10k-labels-idx1-ubyte.gz" --quiet --top-k 1 --json "$WORK/$id.json" > "$WORK/$id.txt"
  $PY - "$BUNDLE/manifest.json" "$WORK/$id.json" "$id" <<'PY'
import json, sys
man, run, mid = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3]
rec = next(l for l in man["local"] if l["id"] == mid)
got = run["accuracy"]
print(f"{mid}: top-1 {got:.2f}% over {run['requests']} images, manifest records {rec['accuracy']:.2f}%; "
      f"{rec['macs']} multiply-adds ({100.0 * rec['macs'] / man['complexity']['macs']:.1f}% of the full model)")
assert run["requests"] == 10000 and run["failures"] == 0, run
# Same TorchScript file, same inputs: at most 5 borderline images may flip with float rounding.
assert abs(got - rec["accuracy"]) <= 0.05, f"{mid}: {got} != recorded {rec['accuracy']}"
if rec["macs"] <= 0.5 * man["complexity"]["macs"] and rec.get("ratio") == 0.5:
    drop = man["accuracy"]["full"] - got
    assert drop <= 1.5, f"{mid}: {drop:.2f} points below the full model (bar: 1.5)"
    print(f"{mid}: {drop:.2f} points below the full model ({man['accuracy']['full']:.2f}%)")
PY
done

# split-plan -> split-client --plan: a busy edge and many requests per round favour the pruned
# model on the device (profiles in round numbers, as a user would pass measured ones).
cat > "$WORK/profiles.json" <<'JSON'
{"models": [
  {"name": "full", "kind": "full", "accuracy": 93.2, "device_ms": 8, "edge_ms": 2, "request_bytes": 830,
   "reply_bytes": 70, "device_finetune_ms": 60000, "edge_finetune_ms": 15000, "weight_bytes": 1300000},
  {"name": "pruned50", "kind": "pruned", "accuracy": 92.2, "device_ms": 4, "device_finetune_ms": 30000,
   "edge_finetune_ms": 7500, "device_prune_ms": 300, "edge_prune_ms": 80, "weight_bytes": 650000}]}
JSON
"$BIN/split-plan" --profiles "$WORK/profiles.json" --edge-load 0.9 --inferences-per-round 100000 \
  --json "$WORK/plan.json" > "$WORK/plan.txt"
grep -q '^recommended: pruned50 prune@device finetune@device infer@device' "$WORK/plan.txt" || {
  echo "FAIL: unexpected recommendation"; cat "$WORK/plan.txt"; exit 1; }
# Bad input is one clear error.
if "$BIN/split-plan" --profiles "$WORK/profiles.json" --edge-load 1.5 > "$WORK/bad.txt" 2>&1; then
  echo "FAIL: --edge-load 1.5 accepted"; exit 1
fi
# Port 9 on loopback: nothing listens there, so the device runs offline (locally), as designed.
"$BIN/split-client" --server 127.0.0.1:9 --bundle "$BUNDLE" --split dynamic --plan "$WORK/plan.json" \
  --input "$DATA/t10k-images-idx3-ubyte.gz" --labels "$DATA/t10k-labels-idx1-ubyte.gz" --limit 60 --top-k 1 \
  --log-level error --json "$WORK/dynamic.json" > "$WORK/dynamic.txt"
# The plan's model is the one local model dynamic weighs besides the full one (its header lists
# the candidates); which of the two answers depends on their profiled times on this machine.
$PY - "$WORK/dynamic.json" "$WORK/dynamic.txt" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
cands = [l.split()[1] for l in open(sys.argv[2]) if l.startswith("#   ")]
print(f"dynamic with the plan's model, offline: candidates {cands}; answered {r['strategies']}, {r['failures']} failures")
assert r["failures"] == 0 and r["requests"] == 60, r
assert "pruned50" in cands and "local" in cands, cands
assert not {"pruned75", "pruned30"} & set(cands), cands
assert set(r["strategies"]) <= {"local", "pruned50"}, r["strategies"]
# The summary's explorations are the per-input lines marked as one.
marked = sum(1 for l in open(sys.argv[2]) if l.rstrip("\n").endswith("\texploration"))
assert r["explorations"] == marked, (r["explorations"], marked)
PY
echo "PASS"
