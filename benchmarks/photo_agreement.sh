#!/usr/bin/env bash
# Photos of any size through the runtime against split-train's Python preprocessing, on a bundle
# trained by split-train: N images of its val or test folder are written again at random sizes
# (48..1600 px a side, some 4000x3000; JPEG, PNG or BMP), then classified by the full model in
# Python (tools/libsplit_tools/images.py + the bundle's full.pt) and by split-client --split local
# (the C++ runtime's decode, resize, crop and normalisation). Prints how many top-1 answers agree.
#   bash benchmarks/photo_agreement.sh BUNDLE IMAGE_FOLDER [N] [WORK]
set -euo pipefail
BUNDLE=$1 FOLDER=$2 N=${3:-1000} WORK=${4:-build/photo-agreement}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=/usr/bin/python3
rm -rf "$WORK" && mkdir -p "$WORK/photos"
"$PY" - "$FOLDER" "$WORK/photos" "$N" <<'PY'
import os, sys, numpy as np, cv2
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = np.random.default_rng(11)
classes = sorted(d for d in os.listdir(src) if os.path.isdir(os.path.join(src, d)))
files = [(c, os.path.join(src, c, f)) for c in classes for f in sorted(os.listdir(os.path.join(src, c)))]
pick = rng.choice(len(files), size=min(n, len(files)), replace=False)
for j, i in enumerate(sorted(pick)):
    c, path = files[i]
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if j % 50 == 0:
        h, w = 3000, 4000
    else:
        h, w = int(rng.integers(48, 1601)), int(rng.integers(48, 1601))
    interp = cv2.INTER_CUBIC if h * w > img.shape[0] * img.shape[1] else cv2.INTER_AREA
    out = cv2.resize(img, (w, h), interpolation=interp)
    ext = (".jpg", ".png", ".bmp")[j % 3]
    os.makedirs(os.path.join(dst, c), exist_ok=True)
    assert cv2.imwrite(os.path.join(dst, c, f"{j:05d}{ext}"), out)
print(f"{len(pick)} photos written")
PY
"$ROOT/build/release/tools/split-client" --bundle "$BUNDLE" --split local --input "$WORK/photos" --top-k 1 --quiet \
  --predictions "$WORK/runtime.jsonl" --json "$WORK/runtime.json" > "$WORK/runtime.txt"
"$PY" - "$ROOT/tools" "$BUNDLE" "$WORK/runtime.jsonl" <<'PY'
import json, sys, torch
sys.path.insert(0, sys.argv[1])
from libsplit_tools import images
bundle, runtime = sys.argv[2], [json.loads(l) for l in open(sys.argv[3])]
man = json.load(open(f"{bundle}/manifest.json"))
prep = images.from_manifest(man)
full = torch.jit.load(f"{bundle}/full.pt").eval()
agree = right_py = right_rt = 0
with torch.no_grad():
    for r in runtime:
        x = prep.normalize(images.load_u8(r["path"], prep).unsqueeze(0))
        p = int(full(x).argmax(1))
        agree += p == r["top_k"][0]
        right_py += man["labels"][p] == r["label"]
        right_rt += r["labels"][0] == r["label"]
n = len(runtime)
print(f"{n} photos: top-1 of the runtime equals Python's on {agree} ({100.0 * agree / n:.2f}%); "
      f"accuracy Python {100.0 * right_py / n:.2f}%, runtime {100.0 * right_rt / n:.2f}%")
PY
