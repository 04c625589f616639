#!/usr/bin/env bash
# split-client on an ImageFolder tree and its --predictions file, with the committed
# Fashion-MNIST bundle (run locally, no server):
#  1. class folders Trouser, Sandal, Shirt, Bag of PNGs of the test set's first images of each class,
#     and a bag filed under Sandal: each image labelled by its folder, accuracy as the predictions
#     file says, and every answer (top-k and scores) equal to the IDX file's for the same image;
#  2. an empty class folder is skipped with a warning; images beside the class folders and hidden
#     folders are not read;
#  3. a folder that is not a label is refused with one line before any request, nothing written;
#     --labels with class folders is refused;
#  4. a flat directory keeps its behaviour (no accuracy, label null), several strategies name
#     their run, and the IDX input's paths are FILE#index.
# usage: split_client_folders.sh BUILD_DIR SOURCE_DIR WORK_DIR
set -euo pipefail
BUILD=$1 SRC=$2 WORK=$3
BIN=$BUILD/tools
BUNDLE=$SRC/models/fmnist-resnet
DATA=${LIBSPLIT_FMNIST_DIR:-/usr/share/datasets/fashion-mnist}
PY=/usr/bin/python3
rm -rf "$WORK" && mkdir -p "$WORK"
fail() { echo "FAIL: $*" >&2; exit 1; }

# PNGs (8-bit gray, written with zlib alone) of the first 6 test images of four classes, named by
# their index in the IDX file, and a few of other classes in a flat directory.
"$PY" - "$DATA" "$WORK" <<'PY'
import gzip, struct, sys, zlib
data, work = sys.argv[1], sys.argv[2]
imgs = gzip.open(f"{data}/t10k-images-idx3-ubyte.gz").read()[16:]
labels = gzip.open(f"{data}/t10k-labels-idx1-ubyte.gz").read()[8:]
names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
def png(path, px):
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    raw = b"".join(b"\0" + px[y * 28:(y + 1) * 28] for y in range(28))
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 28, 28, 8, 0, 0, 0, 0))
                           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
import os
want, flat = {1: 6, 5: 6, 6: 6, 8: 6}, 5
os.makedirs(f"{work}/flat")
for i, l in enumerate(labels):
    px = imgs[i * 784:(i + 1) * 784]
    if want.get(l, 0) > 0:
        os.makedirs(f"{work}/folders/{names[l]}", exist_ok=True)
        png(f"{work}/folders/{names[l]}/{i:05d}.png", px)
        want[l] -= 1
    elif l in (0, 7) and flat > 0:
        png(f"{work}/flat/{i:05d}.png", px)
        flat -= 1
    if not any(want.values()) and flat == 0:
        break
PY
mkdir "$WORK/folders/Dress"                      # an empty class folder
mkdir "$WORK/folders/.cache" && cp "$WORK/flat/$(ls "$WORK/flat" | head -1)" "$WORK/folders/.cache/"  # hidden: no class
# A bag filed as a sandal: its folder is its label, so it counts as a wrong answer.
cp "$WORK/folders/Bag/$(ls "$WORK/folders/Bag" | head -1)" "$WORK/folders/Sandal/zz-bag.png"
cp "$WORK/flat/$(ls "$WORK/flat" | head -1)" "$WORK/folders/stray.png"  # beside the class folders

"$BIN/split-client" --bundle "$BUNDLE" --split local --input "$WORK/folders" --top-k 3 --quiet \
  --json "$WORK/folders.json" --predictions "$WORK/folders.jsonl" > "$WORK/folders.txt" 2> "$WORK/folders.err" \
  || { cat "$WORK/folders.txt" "$WORK/folders.err"; fail "split-client on the class folders"; }
grep -qxF "split-client: $WORK/folders/Dress: empty class folder (no .png/.jpg/.jpeg/.bmp files), skipped" \
  "$WORK/folders.err" || { cat "$WORK/folders.err"; fail "no warning for the empty class folder"; }
grep -q "1 image(s) beside the class folders are not read" "$WORK/folders.err" \
  || { cat "$WORK/folders.err"; fail "no warning for the stray image"; }
grep -q '^accuracy: ' "$WORK/folders.txt" || { cat "$WORK/folders.txt"; fail "no accuracy line"; }

# The same images from the IDX file (the highest index among them is below 100).
"$BIN/split-client" --bundle "$BUNDLE" --split local --input "$DATA/t10k-images-idx3-ubyte.gz" \
  --labels "$DATA/t10k-labels-idx1-ubyte.gz" --limit 100 --top-k 3 --quiet --json "$WORK/idx.json" \
  --predictions "$WORK/idx.jsonl" > "$WORK/idx.txt"

"$PY" - "$WORK" "$DATA/t10k-images-idx3-ubyte.gz" <<'PY'
import json, os, sys
work, idx_file = sys.argv[1], sys.argv[2]
summary = json.load(open(f"{work}/folders.json"))
lines = [json.loads(l) for l in open(f"{work}/folders.jsonl")]
expect_paths = [f"{work}/folders/{c}/{f}" for c in ("Bag", "Sandal", "Shirt", "Trouser")
                for f in sorted(os.listdir(f"{work}/folders/{c}"))]
assert [l["path"] for l in lines] == expect_paths, [l["path"] for l in lines]
assert [l["index"] for l in lines] == list(range(25)), [l["index"] for l in lines]
for l in lines:
    assert l["label"] == l["path"].split("/")[-2], l
    assert l["strategy"] == "local" and "run" not in l and "error" not in l, l
    assert len(l["top_k"]) == len(l["labels"]) == len(l["scores"]) == 3, l
    assert l["scores"] == sorted(l["scores"], reverse=True), l
right = sum(1 for l in lines if l["labels"][0] == l["label"])
bag = next(l for l in lines if l["path"].endswith("/Sandal/zz-bag.png"))
assert bag["label"] == "Sandal" and bag["labels"][0] == "Bag", bag
assert right < 25
print(f"class folders: {summary['requests']} images, top-1 {summary['accuracy']:.2f}% ({summary['correct']} right), "
      f"predictions file: {right} right")
assert summary["requests"] == 25 and summary["failures"] == 0, summary
assert summary["correct"] == right, (summary["correct"], right)
assert abs(summary["accuracy"] - 100.0 * right / 25) < 1e-9, summary

# The PNGs are the IDX images: the same answers, image by image.
idx = {l["index"]: l for l in map(json.loads, open(f"{work}/idx.jsonl"))}
names = json.load(open(f"{work}/idx.json"))
for l in lines:
    if l is bag:
        continue
    i = int(os.path.basename(l["path"])[:-4])
    ref = idx[i]
    assert ref["path"] == f"{idx_file}#{i}", ref
    assert ref["label"] == l["label"], (ref, l)
    assert ref["top_k"] == l["top_k"] and ref["labels"] == l["labels"], (ref, l)
    assert all(abs(a - b) < 1e-6 for a, b in zip(ref["scores"], l["scores"])), (ref, l)
idx_right = sum(1 for l in idx.values() if l["labels"][0] == l["label"])
assert names["correct"] == idx_right and len(idx) == 100, (names["correct"], idx_right, len(idx))
PY

# A folder that is not a label: one line, non-zero exit, no request made (no predictions file).
mkdir -p "$WORK/unknown/Trouser" "$WORK/unknown/Sneakers"
cp "$WORK"/folders/Trouser/*.png "$WORK/unknown/Trouser/"
cp "$WORK"/folders/Bag/*.png "$WORK/unknown/Sneakers/"
if "$BIN/split-client" --bundle "$BUNDLE" --split local --input "$WORK/unknown" --quiet \
    --predictions "$WORK/unknown.jsonl" > "$WORK/unknown.txt" 2> "$WORK/unknown.err"; then
  fail "a class folder that is not a label was accepted"
fi
expected="split-client: $WORK/unknown/Sneakers: class folder 'Sneakers' is not one of the bundle's labels (T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle boot)"
[[ $(cat "$WORK/unknown.err") == "$expected" ]] || { echo "got: $(cat "$WORK/unknown.err")"; fail "unexpected error"; }
[[ ! -e $WORK/unknown.jsonl && ! -s $WORK/unknown.txt ]] || fail "something was written before the refusal"
if "$BIN/split-client" --bundle "$BUNDLE" --split local --input "$WORK/folders" \
    --labels "$DATA/t10k-labels-idx1-ubyte.gz" --quiet > "$WORK/both.txt" 2>&1; then
  fail "--labels with class folders was accepted"
fi
grep -q "class folders, which label its images already" "$WORK/both.txt" || { cat "$WORK/both.txt"; fail "--labels"; }

# A flat directory: no labels, no accuracy; two strategies in one run, each line naming its run.
"$BIN/split-client" --bundle "$BUNDLE" --split local,pruned50 --input "$WORK/flat" --top-k 2 --quiet \
  --json "$WORK/flat.json" --predictions "$WORK/flat.jsonl" > "$WORK/flat.txt"
! grep -q '^accuracy' "$WORK/flat.txt" || fail "accuracy without labels"
"$PY" - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
runs = json.load(open(f"{work}/flat.json"))
assert all("accuracy" not in r for r in runs), runs
lines = [json.loads(l) for l in open(f"{work}/flat.jsonl")]
assert len(lines) == 10, len(lines)
assert [(l["index"], l["run"]) for l in lines] == [(i, r) for i in range(5) for r in ("local", "pruned50")], lines
assert all(l["label"] is None and len(l["top_k"]) == 2 and l["path"].startswith(f"{work}/flat/") for l in lines), lines
print(f"flat directory, two strategies: {len(lines)} prediction lines")
PY
echo "PASS"
