#!/usr/bin/env bash
# What benchmarks/suite.py builds on, against a real split-server on 127.0.0.1:
# - split-client --split a,b,c (several strategies in one process, each input through every one in
#   turn) answers every strategy exactly as a run of that strategy alone does, input by input, and
#   writes one JSON object and one --samples line per strategy and request;
# - its mistakes are named (a strategy twice, an unknown one, --codec with several);
# - bench-load with a split and several clients: every measured request answered, latency
#   percentiles ordered, its input errors named.
#   bench_tools.sh BUILD_DIR SOURCE_DIR WORK_DIR
set -euo pipefail
BUILD=$1 SRC=$2 WORK=$3
rm -rf "$WORK" && mkdir -p "$WORK"
fail() { echo "bench_tools: $*" >&2; exit 1; }
FMNIST=${LIBSPLIT_FMNIST_DIR:-/usr/share/datasets/fashion-mnist}
IN=$FMNIST/t10k-images-idx3-ubyte.gz LABELS=$FMNIST/t10k-labels-idx1-ubyte.gz
BUNDLE=$SRC/models/fmnist-resnet
CLIENT=$BUILD/tools/split-client
exec {fd}< <(exec "$BUILD/tools/split-server" --models "$SRC/models" --listen 127.0.0.1:0 --threads 1 --log-level warn)
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
read -r -t 120 line <&"$fd" || fail "split-server did not start"
port=${line##* }
N=24
common=(--server "127.0.0.1:$port" --bundle "$BUNDLE" --input "$IN" --labels "$LABELS" --limit $((N + 2)) --warmup 2
        --top-k 1 --quiet --log-level error)

"$CLIENT" "${common[@]}" --split local,bf2,offload,pruned50 --json "$WORK/multi.json" --samples "$WORK/multi.tsv" \
  > "$WORK/multi.out" || fail "the multi-strategy run failed: $(cat "$WORK/multi.out")"
"$CLIENT" "${common[@]}" --split local,bf2,offload,pruned50 --shuffle --gap-ms 1 --json "$WORK/shuffled.json" \
  --samples "$WORK/shuffled.tsv" > /dev/null || fail "the shuffled multi-strategy run failed"
for s in local bf2 offload pruned50; do
  "$CLIENT" "${common[@]}" --split "$s" --json "$WORK/$s.json" --samples "$WORK/$s.tsv" > /dev/null ||
    fail "split-client --split $s failed"
done
/usr/bin/python3 - "$WORK" "$N" <<'PY' || fail "the multi-strategy run does not match the single runs"
import csv, json, sys
work, n = sys.argv[1], int(sys.argv[2])
multi = json.load(open(f"{work}/multi.json"))
assert [m["strategy"] for m in multi] == ["local", "bf2", "offload", "pruned50"], multi
rows = list(csv.DictReader(open(f"{work}/multi.tsv"), delimiter="\t"))
assert len(rows) == 4 * n, len(rows)
# interleaved: each input through every strategy in turn
assert [r["run"] for r in rows[:4]] == ["local", "bf2", "offload", "pruned50"], rows[:4]
for m in multi:
    s = m["strategy"]
    single = json.load(open(f"{work}/{s}.json"))
    assert m["requests"] == single["requests"] == n and m["failures"] == 0, (m, single)
    assert m["correct"] == single["correct"], (s, m["correct"], single["correct"])
    assert abs(m["wire_bytes_per_request"] - single["wire_bytes_per_request"]) < 1e-9, s
    alone = list(csv.DictReader(open(f"{work}/{s}.tsv"), delimiter="\t"))
    mine = [r for r in rows if r["run"] == s]
    assert [(r["input"], r["predicted"], r["label"]) for r in mine] == \
           [(r["input"], r["predicted"], r["label"]) for r in alone], s
    for r in mine:
        assert float(r["total_ms"]) >= float(r["head_ms"]) + float(r["tail_ms"]) - 1e-3, r
        assert r["strategy"] == s, r
# --shuffle: the same answers per strategy, in other orders
shuffled = list(csv.DictReader(open(f"{work}/shuffled.tsv"), delimiter="\t"))
assert len(shuffled) == 4 * n, len(shuffled)
orders = {}
for r in shuffled:
    orders.setdefault(r["index"], []).append(r["run"])
assert all(sorted(o) == sorted(["local", "bf2", "offload", "pruned50"]) for o in orders.values()), orders
assert len({tuple(o) for o in orders.values()}) > 1, "--shuffle ran every input in the same order"
for s in ("local", "bf2", "offload", "pruned50"):
    a = sorted((r["index"], r["predicted"]) for r in shuffled if r["run"] == s)
    b = sorted((r["index"], r["predicted"]) for r in rows if r["run"] == s)
    assert a == b, s
print("bench_tools: multi-strategy run (fixed order and shuffled) == single runs for",
      ", ".join(m["strategy"] for m in multi))
PY

expect_error() {  # message, then the command
  local msg=$1; shift
  if "$@" > "$WORK/err.out" 2>&1; then fail "accepted: $*"; fi
  grep -q -- "$msg" "$WORK/err.out" || fail "the error for '$*' does not say '$msg': $(cat "$WORK/err.out")"
}
expect_error 'is named twice' "$CLIENT" "${common[@]}" --split bf2,local,bf2
expect_error 'unknown strategy "nope"' "$CLIENT" "${common[@]}" --split bf2,nope
expect_error 'applies to one split' "$CLIENT" "${common[@]}" --split bf1,bf2 --codec q4

LOAD=$BUILD/benchmarks/bench-load
"$LOAD" --server "127.0.0.1:$port" --bundle "$BUNDLE" --input "$IN" --split bf2 --clients 3 --rate 150 \
  --duration-s 1 --warmup-s 0.3 --seed 7 --json "$WORK/load.json" > /dev/null || fail "bench-load failed"
/usr/bin/python3 - "$WORK/load.json" <<'PY' || fail "bench-load's summary is wrong: $(cat "$WORK/load.json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["split"] == "bf2" and r["clients"] == 3, r
assert r["measured"] > 50 and r["answered"] == r["measured"], r
assert r["rejected"] == 0 and r["skipped"] == 0 and r["unanswered"] == 0, r
assert r["sent"] > r["measured"], r  # the warm-up arrivals were sent, not counted
l = r["latency_ms"]
assert 0 < l["p50"] <= l["p90"] <= l["p99"] <= l["max"], l
assert l["p50"] >= r["tail_ms"]["p50"], r
print(f"bench_tools: bench-load {r['measured']} measured requests, all answered, p99 {l['p99']:.2f} ms")
PY
expect_error 'has no split "nope"' "$LOAD" --server "127.0.0.1:$port" --bundle "$BUNDLE" --input "$IN" --split nope --rate 10
expect_error 'cannot open' "$LOAD" --server "127.0.0.1:$port" --bundle "$BUNDLE" --input "$WORK/missing.idx" --rate 10
expect_error 'usage' "$LOAD" --server "127.0.0.1:$port" --bundle "$BUNDLE" --input "$IN" --rate 0
echo "bench_tools: passed"
