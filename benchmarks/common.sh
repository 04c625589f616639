# Shared by the benchmark scripts (source it): starting split-server and split-linkemu on
# loopback, confining the device to a CPU quota, and stopping what was started.
#   bench_start_server MODELS_DIR WORKERS TORCH_THREADS   -> SERVER_PORT
#   bench_start_linkemu TARGET_PORT RTT_MS                -> EMU_PORT, CTL_PORT
#   bench_device_quota QUOTA                              -> DEVICE (description), DEVICE_RUN (prefix array)
# Everything started is stopped, and the cgroup removed, when the script exits.
BENCH_BIN=${BENCH_BIN:-build/release/tools}
BENCH_PIDS=()
BENCH_CG=""

bench_cleanup() {
  local p
  for p in "${BENCH_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${BENCH_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [[ -n $BENCH_CG && -d $BENCH_CG ]]; then
    # A device run still inside (the script was interrupted during it) keeps the cgroup busy.
    for p in $(cat "$BENCH_CG/tasks" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
    for _ in {1..50}; do [[ -s $BENCH_CG/tasks ]] || break; sleep 0.1; done
    rmdir "$BENCH_CG" 2>/dev/null || echo "benchmark: could not remove $BENCH_CG" >&2
  fi
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

bench_start_server() {
  exec {BENCH_SRV_FD}< <(exec "$BENCH_BIN/split-server" --models "$1" --listen 127.0.0.1:0 --threads "$2" \
    --torch-threads "$3" --log-level warn)
  BENCH_PIDS+=("$!")
  local line
  read -r -t 300 line <&"$BENCH_SRV_FD" || { echo "benchmark: split-server did not start" >&2; exit 1; }
  SERVER_PORT=${line##* }
}

bench_start_linkemu() {
  local half_us=$(($2 * 500)) line
  exec {BENCH_EMU_FD}< <(exec "$BENCH_BIN/split-linkemu" --listen 127.0.0.1:0 --target "127.0.0.1:$1" \
    --delay "${half_us}us" --control 127.0.0.1:0 --log-level error)
  BENCH_PIDS+=("$!")
  EMU_PORT="" CTL_PORT=""
  while [[ -z $CTL_PORT ]] && read -r -t 30 line <&"$BENCH_EMU_FD"; do
    [[ $line =~ listening\ on\ .*\(port\ ([0-9]+)\) ]] && EMU_PORT=${BASH_REMATCH[1]}
    [[ $line =~ control\ on\ .*\(port\ ([0-9]+)\) ]] && CTL_PORT=${BASH_REMATCH[1]}
  done
  [[ -n $CTL_PORT ]] || { echo "benchmark: split-linkemu did not start" >&2; exit 1; }
}

bench_device_quota() {
  DEVICE="unconfined (not root: no CPU quota)"
  DEVICE_RUN=()
  if [[ $(id -u) -eq 0 && -w /sys/fs/cgroup/cpu ]]; then
    BENCH_CG=/sys/fs/cgroup/cpu/libsplit-bench-$$
    mkdir "$BENCH_CG"
    # The shortest period whose quota is the kernel's 1 ms minimum (1 ms on, 3 ms off at a quarter
    # core), as the benchmark suite does: short slices slow even a millisecond's work evenly,
    # where long periods let it finish inside one burst or wait a whole period.
    local period quota_us
    read -r period quota_us < <(/usr/bin/python3 -c "import math; q=$1; p=min(100000, max(1000, math.ceil(1000 / q))); print(p, round(q * p))")
    echo "$period" > "$BENCH_CG/cpu.cfs_period_us"
    echo "$quota_us" > "$BENCH_CG/cpu.cfs_quota_us"
    DEVICE="CPU quota $1 of one core (cgroup v1, ${quota_us}/${period} us), 1 LibTorch thread"
    DEVICE_RUN=(bash -c 'echo $$ > "$0/tasks"; exec "$@"' "$BENCH_CG")
  fi
}
