#!/usr/bin/env bash
# split-train's whole path on a tiny ImageFolder made here (3 classes of synthetic shapes, 150
# files of mixed sizes, formats and channel layouts, plus a large JPEG): teacher training, both
# BottleFit stages, a natural cut, a pruned local model, export, calibration; then split-server
# serves the bundle and split-client runs the val folder through every split and both local
# models: the accuracy through the server equals the manifest's for each, with 0 failures, and
# the full model on the device answers each photo as the Python side does (the same
# preprocessing: decode, resize, crop, normalisation).
# usage: split_train_e2e.sh BUILD_DIR SOURCE_DIR WORK_DIR
set -euo pipefail
BUILD=$1 SRC=$2 WORK=$3
BIN=$BUILD/tools
PY=/usr/bin/python3
rm -rf "$WORK" && mkdir -p "$WORK/models"
fail() { echo "FAIL: $*" >&2; exit 1; }

"$PY" "$SRC/tools/make_shapes_folder.py" "$WORK/shapes" --train 40 --val 10 --seed 1 > /dev/null
# A phone-sized photo among the val images: decoded, resized and cropped like the small ones.
"$PY" - "$WORK/shapes/val/circle/big.jpg" <<'PY'
import sys, numpy as np, cv2
img = np.zeros((3000, 4000, 3), np.uint8); img[:] = (40, 30, 20)
cv2.circle(img, (2000, 1500), 1000, (60, 200, 240), -1)
assert cv2.imwrite(sys.argv[1], img)
PY

start=$(date +%s)
"$PY" "$SRC/tools/split_train.py" --data "$WORK/shapes" --arch resnet18 --train-teacher --input-size 32 \
  --split-after layer1 --widths 2 --natural layer3 --prune 0.6 --epochs-teacher 10 --epochs-hd 2 --epochs-kd 2 \
  --epochs-prune 1 --batch-size 16 --threads 1 --out "$WORK/models/shapes" > "$WORK/train.log" 2> "$WORK/train.err" \
  || { cat "$WORK/train.log" "$WORK/train.err"; fail "split-train failed"; }
echo "split-train: $(( $(date +%s) - start )) s"
tail -n 3 "$WORK/train.log"
[[ -f $WORK/models/shapes/recipe.toml ]] || fail "no recipe.toml beside the bundle"
[[ -f $WORK/models/shapes/train.log ]] || fail "no train.log in the bundle"

exec {srv}< <(exec "$BIN/split-server" --models "$WORK/models" --listen 127.0.0.1:0 --threads 1 --log-level warn)
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
read -r -t 120 line <&"$srv" || fail "split-server did not start"
port=${line##* }

MAN=$WORK/models/shapes/manifest.json
runs=$("$PY" -c "
import json, sys
m = json.load(open(sys.argv[1]))
print(' '.join([s['id'] for s in m['splits']] + ['local'] + [l['id'] for l in m.get('local', [])]))" "$MAN")
echo "strategies: $runs"
for id in $runs; do
  "$BIN/split-client" --server "127.0.0.1:$port" --bundle "$WORK/models/shapes" --split "$id" \
    --input "$WORK/shapes/val" --top-k 1 --quiet --json "$WORK/$id.json" \
    --predictions "$WORK/$id.jsonl" > "$WORK/$id.txt" 2>&1 || { cat "$WORK/$id.txt"; fail "split-client --split $id"; }
done
"$PY" - "$SRC/tools" "$MAN" "$WORK" $runs <<'PY'
import json, os, sys, torch
sys.path.insert(0, sys.argv[1])
from libsplit_tools import images
man, work, runs = json.load(open(sys.argv[2])), sys.argv[3], sys.argv[4:]
prep = images.from_manifest(man)
full = torch.jit.load(os.path.join(os.path.dirname(sys.argv[2]), "full.pt")).eval()
local = [json.loads(l) for l in open(f"{work}/local.jsonl")]
with torch.no_grad():
    py = [int(full(prep.normalize(images.load_u8(r["path"], prep).unsqueeze(0))).argmax(1)) for r in local]
same = sum(p == r["top_k"][0] for p, r in zip(py, local))
print(f"full model: the runtime's top-1 equals Python's on {same} of {len(local)} photos")
assert same == len(local)
n_val = man["accuracy"]["images"]
for rid in runs:
    r = json.load(open(f"{work}/{rid}.json"))
    if rid == "local":
        want = man["accuracy"]["full"]
    elif any(s["id"] == rid for s in man["splits"]):
        want = next(s for s in man["splits"] if s["id"] == rid)["accuracy"]["codec"]
    else:
        want = next(l for l in man["local"] if l["id"] == rid)["accuracy"]
    lines = [json.loads(l) for l in open(f"{work}/{rid}.jsonl")]
    print(f"{rid:>10}: {r['accuracy']:.2f}% through split-client over {r['requests']} images, manifest {want:.2f}%, "
          f"{r['failures']} failures")
    assert r["requests"] == n_val == len(lines), (r["requests"], n_val, len(lines))
    assert r["failures"] == 0, r
    assert round(r["accuracy"], 2) == want, f"{rid}: {r['accuracy']:.4f} != manifest {want} (2 decimals)"
    right = sum(1 for l in lines if l["labels"][0] == l["label"])
    assert right == r["correct"], f"{rid}: predictions file has {right} right, the summary {r['correct']}"
PY
echo "PASS"
