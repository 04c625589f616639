#!/usr/bin/env bash
# The deployment planner against measurement: in each scenario (edge load, inferences per
# fine-tuning round, link rate, privacy, targets) split-plan recommends a placement from
# profiles measured on an idle edge, and every inference option is then run for real under
# that scenario: split-server with one worker, loaded by bench-load (Poisson arrivals of other
# tenants' offloads at the scenario's utilisation), the device behind split-linkemu and confined
# to a CPU quota (cgroup v1; needs root, else unconfined and the report says so), requests paced
# at the scenario's rate. The measured cost of each placement uses the measured latency, device
# time, bytes, tail time and edge utilisation with the round work (fine-tuning, pruning, weights)
# profiled once on each side; the report says whether the planner's choice is the cheapest
# measured one.
#   benchmarks/plan_scenarios.sh [--requests 40] [--rate-hz 10] [--device-quota 0.25] [--rtt-ms 10]
#                                [--round-samples 2000] [--scenarios FILE] [--out build/bench/plan]
#                                [--stat mean|p50] [--report-only]
# --stat: the figure of each run the profiles and the measured costs use (see plan_report.py).
# --report-only: no measurement; profiles, each scenario's plan and the report again from the runs
# an earlier run left under --out (e.g. with another --stat).
# Scenarios: benchmarks/plan_scenarios.txt (one per line: name load inferences_per_round
# link_mbps private latency_bound_ms accuracy_floor).
# Writes profiles.json, per scenario the plan and every run's JSON, results.csv and report.md.
set -euo pipefail
cd "$(dirname "$0")/.."
N=40 RATE_HZ=10 QUOTA=0.25 RTT_MS=10 ROUND_SAMPLES=2000 SCEN=benchmarks/plan_scenarios.txt OUT=build/bench/plan
STAT=mean REPORT_ONLY=0
while (($#)); do
  case "$1" in
    --requests) N=$2; shift 2 ;;
    --rate-hz) RATE_HZ=$2; shift 2 ;;
    --device-quota) QUOTA=$2; shift 2 ;;
    --rtt-ms) RTT_MS=$2; shift 2 ;;
    --round-samples) ROUND_SAMPLES=$2; shift 2 ;;
    --scenarios) SCEN=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --stat) STAT=$2; shift 2 ;;
    --report-only) REPORT_ONLY=1; shift ;;
    *) echo "plan_scenarios: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[[ -f $SCEN ]] || { echo "plan_scenarios: $SCEN: no such scenarios file" >&2; exit 2; }
[[ $STAT == mean || $STAT == p50 ]] || { echo "plan_scenarios: --stat is mean or p50, not '$STAT'" >&2; exit 2; }
bash tools/build.sh > /dev/null
BIN=build/release/tools
BUNDLE=models/fmnist-resnet
if ((REPORT_ONLY)); then
  [[ -f $OUT/environment.json ]] || { echo "plan_scenarios: --report-only: no earlier run under $OUT" >&2; exit 2; }
  /usr/bin/python3 benchmarks/plan_report.py profiles --bundle "$BUNDLE" --dir "$OUT/profile" --out "$OUT/profiles.json" \
    --stat "$STAT"
  for d in "$OUT"/scenarios/*/; do
    mapfile -t flags < "$d/flags.txt"
    "$BIN/split-plan" --profiles "$OUT/profiles.json" "${flags[@]}" --json "$d/plan.json" > "$d/plan.txt" || true
  done
  /usr/bin/python3 benchmarks/plan_report.py report --dir "$OUT" --stat "$STAT" | tee "$OUT/report.md"
  exit 0
fi
DATA=/usr/share/datasets/fashion-mnist
IMAGES=$DATA/t10k-images-idx3-ubyte.gz LABELS=$DATA/t10k-labels-idx1-ubyte.gz
mkdir -p "$OUT/profile"
MODELS=$OUT/models
mkdir -p "$MODELS" && ln -sfn "$PWD/$BUNDLE" "$MODELS/fmnist-resnet"

source benchmarks/common.sh
bench_start_server "$MODELS" 1 1
bench_start_linkemu "$SERVER_PORT" "$RTT_MS"
bench_device_quota "$QUOTA"
echo "device: $DEVICE; edge: split-server, 1 worker, 1 LibTorch thread; link: split-linkemu, ${RTT_MS} ms round trip"

# Inference options: the full model here, each local (pruned) model, offload, each split.
OPTIONS=$(/usr/bin/python3 -c "import json,sys; m=json.load(open(sys.argv[1]+'/manifest.json')); print(' '.join(['local']+[l['id'] for l in m.get('local',[])]+['offload']+[s['id'] for s in m['splits']]))" "$BUNDLE")
run_options() {  # DIR RATE_HZ: every option, paced, JSON per option
  local dir=$1 o
  mkdir -p "$dir"
  for o in $OPTIONS; do
    "${DEVICE_RUN[@]}" "$BIN/split-client" --server "127.0.0.1:$EMU_PORT" --bundle "$BUNDLE" --split "$o" \
      --input "$IMAGES" --labels "$LABELS" --warmup 5 --limit $((N + 5)) --threads 1 --top-k 1 --rate "$2" \
      --log-level error --quiet --json "$dir/$o.json" < /dev/null > "$dir/$o.txt" 2>&1 || echo "   $o FAILED (see $dir/$o.txt)"
  done
}

echo "== profiling on an idle edge (link unshaped), paced as the scenarios are"
rm -rf "$OUT/profile/runs" "$OUT/scenarios"
"$BIN/split-linkemu" --send "127.0.0.1:$CTL_PORT" "set both rate=0" > /dev/null
# Paced at the scenarios' rate: back to back, a device under a CPU quota spends its quota and is
# throttled between requests, which paced requests are not; profiles taken that way overstated
# the device's time by up to 5x against the same model in the scenarios.
run_options "$OUT/profile/runs" "$RATE_HZ"
echo "   fine-tuning and pruning on the device (quota) and on the edge"
"${DEVICE_RUN[@]}" /usr/bin/python3 tools/profile_finetune.py --bundle "$BUNDLE" --round-samples "$ROUND_SAMPLES" \
  --out "$OUT/profile/device_train.json" > "$OUT/profile/device_train.txt"
/usr/bin/python3 tools/profile_finetune.py --bundle "$BUNDLE" --round-samples "$ROUND_SAMPLES" \
  --out "$OUT/profile/edge_train.json" > "$OUT/profile/edge_train.txt"
/usr/bin/python3 benchmarks/plan_report.py profiles --bundle "$BUNDLE" --dir "$OUT/profile" --out "$OUT/profiles.json" \
  --stat "$STAT"
FULL_EDGE_MS=$(/usr/bin/python3 -c "import json,sys; print(next(m['edge_ms'] for m in json.load(open(sys.argv[1]))['models'] if m['kind']=='full'))" "$OUT/profiles.json")
FT_BYTES=$((ROUND_SAMPLES * 785))  # a 28x28 image and its label per sample

cat > "$OUT/environment.json" <<JSON
{"commit": "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)", "cpu": "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')",
 "cores": $(nproc), "kernel": "$(uname -r)", "device": "$DEVICE", "edge": "split-server, 1 worker, 1 LibTorch thread",
 "rtt_ms": $RTT_MS, "requests": $N, "rate_hz": $RATE_HZ, "round_samples": $ROUND_SAMPLES, "finetune_bytes": $FT_BYTES,
 "full_edge_ms": $FULL_EDGE_MS}
JSON

while read -r name load k mbps private bound floor; do
  [[ -z $name || $name == \#* ]] && continue
  d=$OUT/scenarios/$name
  rm -rf "$d" && mkdir -p "$d"  # nothing of an earlier run may be taken for this one's
  flags=(--link-mbps "$mbps" --rtt-ms "$RTT_MS" --edge-load "$load" --edge-workers 1 --request-rate "$RATE_HZ"
         --inferences-per-round "$k" --finetune-bytes "$FT_BYTES" --latency-bound-ms "$bound" --accuracy-floor "$floor")
  [[ $private == yes ]] && flags+=(--private)
  echo "== $name: edge load $load, $k inferences per round, $mbps Mbit/s, private $private, bound $bound ms, floor $floor"
  "$BIN/split-plan" --profiles "$OUT/profiles.json" "${flags[@]}" --json "$d/plan.json" > "$d/plan.txt" || true
  grep '^recommended' "$d/plan.txt" | sed 's/^/   /' || echo "   split-plan failed: $(cat "$d/plan.txt")"
  "$BIN/split-linkemu" --send "127.0.0.1:$CTL_PORT" "set both rate=${mbps}mbit" > /dev/null
  load_pid=""
  if /usr/bin/python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) > 0 else 1)" "$load"; then
    # The other tenants' offloads at the scenario's utilisation. A busy server runs them faster
    # than the idle profile did (warm caches), so the rate comes from their tail time measured
    # under that load in a short calibration run; otherwise the edge is less loaded than planned.
    hz=$(/usr/bin/python3 -c "import sys; print(float(sys.argv[1]) / (float(sys.argv[2]) / 1000.0))" "$load" "$FULL_EDGE_MS")
    build/release/benchmarks/bench-load --server "127.0.0.1:$SERVER_PORT" --bundle "$BUNDLE" --input "$IMAGES" \
      --rate "$hz" --duration-s 6 --warmup-s 2 --seed 5 --json "$d/load-calibration.json" > "$d/load-calibration.txt" 2>&1
    hz=$(/usr/bin/python3 -c "import json, sys; t = json.load(open(sys.argv[2]))['tail_ms']['mean']; print(float(sys.argv[1]) / (t / 1000.0))" \
      "$load" "$d/load-calibration.json")
    echo "   background: $hz offloads/s (calibrated)"
    build/release/benchmarks/bench-load --server "127.0.0.1:$SERVER_PORT" --bundle "$BUNDLE" --input "$IMAGES" \
      --rate "$hz" --duration-s 3600 --seed 7 --json "$d/load.json" > "$d/load.txt" 2>&1 &
    load_pid=$!
    BENCH_PIDS+=("$load_pid")
  fi
  run_options "$d/runs" "$RATE_HZ"
  if [[ -n $load_pid ]]; then
    kill -TERM "$load_pid" 2>/dev/null || true
    wait "$load_pid" 2>/dev/null || true
    unset 'BENCH_PIDS[-1]'  # reaped: its id must not be signalled again at exit
  fi
  printf '%s\n' "${flags[@]}" > "$d/flags.txt"
done < "$SCEN"
/usr/bin/python3 benchmarks/plan_report.py report --dir "$OUT" --stat "$STAT" | tee "$OUT/report.md"
