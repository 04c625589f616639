#!/usr/bin/env bash
# split-train interrupted after an epoch (as by Ctrl-C, right after its checkpoint) and run again
# with --resume ends with the same bundle as a run that was never interrupted: the same weights
# in every TorchScript file's parameters, the same accuracies; once in the teacher stage, once in
# head distillation, once in KD fine-tuning.
# usage: split_train_resume.sh SOURCE_DIR WORK_DIR
set -euo pipefail
SRC=$1 WORK=$2
PY=/usr/bin/python3
rm -rf "$WORK" && mkdir -p "$WORK"
fail() { echo "FAIL: $*" >&2; exit 1; }
"$PY" "$SRC/tools/make_shapes_folder.py" "$WORK/data" --train 6 --val 3 > /dev/null
args=(--data "$WORK/data" --arch resnet18 --train-teacher --input-size 32 --split-after layer1 --widths 2
      --epochs-teacher 2 --epochs-hd 2 --epochs-kd 2 --batch-size 4 --threads 1 --no-context)
"$PY" "$SRC/tools/split_train.py" "${args[@]}" --out "$WORK/straight" > "$WORK/straight.log" 2>&1 \
  || { cat "$WORK/straight.log"; fail "the uninterrupted run failed"; }
for stop in 1 3 5; do  # epoch lines: teacher 1-2, head distillation 3-4, KD 5-6
  out=$WORK/resumed$stop
  set +e
  SPLIT_TRAIN_STOP_AFTER_EPOCHS=$stop "$PY" "$SRC/tools/split_train.py" "${args[@]}" --out "$out" \
    > "$WORK/first$stop.log" 2> "$WORK/first$stop.err"
  rc=$?
  set -e
  [[ $rc -eq 130 ]] || { cat "$WORK/first$stop.err"; fail "interrupted run: status $rc, expected 130"; }
  grep -q "interrupted; the last finished epoch is in the checkpoint" "$WORK/first$stop.err" || fail "no interruption message"
  [[ ! -e $out ]] || fail "an interrupted run wrote the bundle"
  "$PY" "$SRC/tools/split_train.py" "${args[@]}" --out "$out" --resume > "$WORK/resume$stop.log" 2>&1 \
    || { cat "$WORK/resume$stop.log"; fail "--resume failed"; }
  grep -q "^resumed: stage" "$WORK/resume$stop.log" || fail "the second run did not resume"
  "$PY" - "$WORK/straight" "$out" <<'PY'
import json, os, sys, torch
a, b = sys.argv[1], sys.argv[2]
ma, mb = json.load(open(f"{a}/manifest.json")), json.load(open(f"{b}/manifest.json"))
assert ma["accuracy"] == mb["accuracy"], (ma["accuracy"], mb["accuracy"])
assert [s["accuracy"] for s in ma["splits"]] == [s["accuracy"] for s in mb["splits"]]
for f in sorted(os.listdir(a)):
    if f.endswith(".pt"):
        sa, sb = torch.jit.load(f"{a}/{f}").state_dict(), torch.jit.load(f"{b}/{f}").state_dict()
        assert sa.keys() == sb.keys(), f
        for k in sa:
            assert torch.equal(sa[k], sb[k]), f"{f}: {k} differs after resuming"
print(f"{b}: same weights and accuracies as the uninterrupted run")
PY
done
echo "PASS"
