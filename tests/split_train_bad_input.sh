#!/usr/bin/env bash
# split-train refuses bad input with one clear line on stderr, exit status 2, and writes nothing
# (neither the bundle nor its work directory): missing or empty class folders, an unreadable
# image, an unknown architecture, a split module that does not exist, weights that do not fit,
# a bottleneck not smaller than the input, pruning a network it does not apply to, --resume with
# a different recipe.
# usage: split_train_bad_input.sh SOURCE_DIR WORK_DIR
set -euo pipefail
SRC=$1 WORK=$2
PY=/usr/bin/python3
rm -rf "$WORK" && mkdir -p "$WORK"
fail() { echo "FAIL: $*" >&2; exit 1; }
"$PY" "$SRC/tools/make_shapes_folder.py" "$WORK/good" --train 4 --val 2 > /dev/null
base=(--arch resnet18 --train-teacher --input-size 32 --split-after layer1 --widths 2 --epochs-teacher 1
      --epochs-hd 1 --epochs-kd 1 --batch-size 4 --threads 1)

# expect NAME "substring of the one line" ARGS...
expect() {
  local name=$1 want=$2; shift 2
  local out=$WORK/out-$name
  set +e
  "$PY" "$SRC/tools/split_train.py" "$@" --out "$out" > "$WORK/$name.stdout" 2> "$WORK/$name.stderr"
  local rc=$?
  set -e
  [[ $rc -eq 2 ]] || { cat "$WORK/$name.stderr"; fail "$name: exit status $rc, expected 2"; }
  local lines; lines=$(wc -l < "$WORK/$name.stderr")
  [[ $lines -eq 1 ]] || { cat "$WORK/$name.stderr"; fail "$name: $lines lines on stderr, expected one"; }
  grep -qF -- "$want" "$WORK/$name.stderr" || { cat "$WORK/$name.stderr"; fail "$name: no '$want'"; }
  [[ ! -e $out && ! -e $out.work ]] || fail "$name: something was written"
  echo "ok $name: $(cat "$WORK/$name.stderr")"
}

cp -r "$WORK/good" "$WORK/noval" && rm -rf "$WORK/noval/val"
expect missing-val "noval/val: missing" --data "$WORK/noval" "${base[@]}"
cp -r "$WORK/good" "$WORK/empty" && rm -f "$WORK/empty/train/square/"*
expect empty-class "train/square: class folder has no" --data "$WORK/empty" "${base[@]}"
cp -r "$WORK/good" "$WORK/mismatch" && mv "$WORK/mismatch/val/square" "$WORK/mismatch/val/rhombus"
expect class-mismatch "mismatch/val: has rhombus that train/ has not" --data "$WORK/mismatch" "${base[@]}"
cp -r "$WORK/good" "$WORK/unreadable" && echo "not an image" > "$WORK/unreadable/train/circle/broken.png"
expect unreadable "broken.png: cannot be decoded" --data "$WORK/unreadable" "${base[@]}"
expect unknown-arch "unknown architecture 'resnet9000'" --data "$WORK/good" --arch resnet9000 --train-teacher \
  --input-size 32 --split-after layer1 --widths 2
expect unknown-module "--split-after 'layer9': no such module" --data "$WORK/good" --arch resnet18 --train-teacher \
  --input-size 32 --split-after layer9 --widths 2
"$PY" -c "import torch, torchvision, sys; torch.save(torchvision.models.resnet18(num_classes=5).state_dict(), sys.argv[1])" \
  "$WORK/five.pt"
expect weights-misfit "key 'fc.weight' has shape [5, 512] in the file but [3, 512] in the model" --data "$WORK/good" \
  --arch resnet18 --teacher-weights "$WORK/five.pt" --input-size 32 --split-after layer1 --widths 2
expect wide-bottleneck "not smaller than the 3072-byte input" --data "$WORK/good" --arch resnet18 --train-teacher \
  --input-size 32 --split-after layer1 --bottleneck-stride 1 --widths 64
expect prune-not-resnet "MobileNetV2 has no ResNet blocks" --data "$WORK/good" --arch mobilenet_v2 --train-teacher \
  --input-size 32 --natural features.10 --prune 0.5
expect prune-out-of-reach "ratio 0.05 is below what pruning" --data "$WORK/good" "${base[@]}" --prune 0.05
expect no-teacher "the teacher has no weights" --data "$WORK/good" --arch resnet18 --input-size 32 \
  --split-after layer1 --widths 2

# --resume with another recipe: one run (interrupted or not) leaves its checkpoint; a second run
# with other epochs and --resume is refused, and the earlier run's files stay as they were.
"$PY" "$SRC/tools/split_train.py" --data "$WORK/good" "${base[@]}" --out "$WORK/run" > "$WORK/run.log" 2>&1 \
  || { cat "$WORK/run.log"; fail "the reference run failed"; }
before=$(cd "$WORK" && find run run.work -type f -exec sha256sum {} + | sort)
set +e
"$PY" "$SRC/tools/split_train.py" --data "$WORK/good" "${base[@]}" --epochs-kd 2 --out "$WORK/run" --resume \
  > /dev/null 2> "$WORK/resume.stderr"
rc=$?
set -e
[[ $rc -eq 2 && $(wc -l < "$WORK/resume.stderr") -eq 1 ]] || { cat "$WORK/resume.stderr"; fail "resume: status $rc"; }
grep -qF "was made by another recipe (epochs_kd: 1 there, 2 here)" "$WORK/resume.stderr" \
  || { cat "$WORK/resume.stderr"; fail "resume: wrong message"; }
after=$(cd "$WORK" && find run run.work -type f -exec sha256sum {} + | sort)
[[ $before == "$after" ]] || fail "resume: the refused run changed files"
echo "ok resume-other-recipe: $(cat "$WORK/resume.stderr")"
# The same recipe without --resume is refused too (the checkpoint is not overwritten by accident).
set +e
"$PY" "$SRC/tools/split_train.py" --data "$WORK/good" "${base[@]}" --out "$WORK/run" > /dev/null 2> "$WORK/again.stderr"
rc=$?
set -e
[[ $rc -eq 2 ]] && grep -qF -- "--resume to go on with it, --restart to discard it" "$WORK/again.stderr" \
  || { cat "$WORK/again.stderr"; fail "a second run over a checkpoint was not refused"; }
echo "ok checkpoint-kept: $(cat "$WORK/again.stderr")"
echo "PASS"
