#!/usr/bin/env bash
# Scale-out on existing parts: HAProxy with tools/service/haproxy.cfg in front of two split-server
# daemons on loopback. A device (split-client, fixed split) runs Fashion-MNIST test images
# through the balancer; after its 100th answer the daemon serving it is killed with SIGKILL.
# Every request must still be answered, each with the class a direct run against a daemon gives.
#   loadbalancer.sh BUILD_DIR SOURCE_DIR WORK_DIR
set -euo pipefail
BUILD=$1 SRC=$2 WORK=$3
BIN=$BUILD/tools
N=400 KILL_AT=100
command -v haproxy > /dev/null || { echo "loadbalancer: haproxy is not installed (tools/install-deps.sh installs it)" >&2; exit 1; }
FMNIST=${LIBSPLIT_FMNIST_DIR:-/usr/share/datasets/fashion-mnist}
INPUT=$FMNIST/t10k-images-idx3-ubyte.gz LABELS=$FMNIST/t10k-labels-idx1-ubyte.gz
BUNDLE=$SRC/models/fmnist-resnet
rm -rf "$WORK" && mkdir -p "$WORK"

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

# Starts a daemon on free loopback ports; sets PORT, HTTP_PORT and PID.
start_daemon() {
  local line
  exec {fd}< <(exec "$BIN/split-server" --models "$BUNDLE" --listen 127.0.0.1:0 --http 127.0.0.1:0 --threads 1 \
    --log-level warn)
  PID=$!
  pids+=("$PID")
  read -r -t 120 line <&"$fd" || { echo "loadbalancer: split-server did not start" >&2; exit 1; }
  PORT=${line##* }
  read -r -t 10 line <&"$fd" || { echo "loadbalancer: split-server did not report its HTTP port" >&2; exit 1; }
  HTTP_PORT=${line##* }
}
start_daemon; D1_PID=$PID D1_PORT=$PORT D1_HTTP=$HTTP_PORT
start_daemon; D2_PID=$PID D2_PORT=$PORT D2_HTTP=$HTTP_PORT

# GET http://127.0.0.1:$1$2 (bash's /dev/tcp: no client needed).
http_get() {
  exec {h}<> "/dev/tcp/127.0.0.1/$1"
  printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&"$h"
  cat <&"$h"
  exec {h}<&-
}
open_connections() { http_get "$1" /metrics | awk '$1 == "libsplit_open_connections" {print $2}'; }

# A free port for the balancer (the kernel picks it; closed again at once).
LB_PORT=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export LB_LISTEN=127.0.0.1:$LB_PORT D1=127.0.0.1:$D1_PORT D1_HTTP D2=127.0.0.1:$D2_PORT D2_HTTP
haproxy -c -q -f "$SRC/tools/service/haproxy.cfg"
haproxy -f "$SRC/tools/service/haproxy.cfg" -db > "$WORK/haproxy.log" 2>&1 &
pids+=("$!")

client() {  # server json
  "$BIN/split-client" --server "$1" --bundle "$BUNDLE" --split bf1 --input "$INPUT" --labels "$LABELS" \
    --limit "$N" --top-k 1 --json "$2" --log-level warn
}
# Per-request lines: name, class, score, label, strategy, "N ms" (names of IDX records start with #).
classes() { awk -F'\t' 'NF >= 5 && $0 ~ /\t[0-9.]+ ms/ {print $1, $2}' "$1"; }

# Reference: the same images straight to one daemon.
client "127.0.0.1:$D2_PORT" "$WORK/direct.json" > "$WORK/direct.log"

# The balancer is up once it forwards a handshake (bounded: 100 tries).
for ((i = 0; i < 100; i++)); do
  "$BIN/split-client" --server "$LB_LISTEN" --bundle "$BUNDLE" --split bf1 --input "$INPUT" --limit 1 \
    --log-level off > /dev/null 2>&1 && break
done
((i < 100)) || { echo "loadbalancer: haproxy does not forward to the daemons" >&2; cat "$WORK/haproxy.log" >&2; exit 1; }

echo "== $N requests through haproxy; the serving daemon is killed after answer $KILL_AT"
n=0 killed=""
set +e
client "$LB_LISTEN" "$WORK/balanced.json" 2> "$WORK/balanced.err" | while IFS= read -r line; do
  printf '%s\n' "$line" >> "$WORK/balanced.log"
  if [[ $line =~ $'\t'[0-9.]+\ ms ]]; then
    n=$((n + 1))
    if ((n == KILL_AT)); then
      if [[ $(open_connections "$D1_HTTP") == 1 ]]; then victim=$D1_PID name=d1; else victim=$D2_PID name=d2; fi
      kill -KILL "$victim"
      echo "killed $name (pid $victim) after answer $n" | tee "$WORK/killed"
    fi
  fi
done
rc=${PIPESTATUS[0]}
set -e
grep -E "requests|accuracy" "$WORK/balanced.log" || true
[[ -f $WORK/killed ]] || { echo "loadbalancer: no daemon was killed (fewer than $KILL_AT answers)" >&2; exit 1; }
((rc == 0)) || { echo "loadbalancer: split-client failed (exit $rc): some requests were not answered" >&2; exit 1; }
grep -q "^fmnist-resnet .*: $N requests, 0 failures" "$WORK/balanced.log" ||
  { echo "loadbalancer: not every request was answered" >&2; exit 1; }
(($(classes "$WORK/direct.log" | wc -l) == N)) || { echo "loadbalancer: the direct run did not answer $N requests" >&2; exit 1; }
if ! diff <(classes "$WORK/direct.log") <(classes "$WORK/balanced.log") > "$WORK/diff.txt"; then
  echo "loadbalancer: answers through the balancer differ from the direct run:" >&2
  head "$WORK/diff.txt" >&2
  exit 1
fi
# The kill was felt: the client lost its connection and sent the request on it again.
grep -q "lost" "$WORK/balanced.err" || { echo "loadbalancer: the client never lost its connection" >&2; exit 1; }
grep -h "lost\|again" "$WORK/balanced.err" | head -3
survivor=$D1_HTTP; [[ $(cat "$WORK/killed") == killed\ d1* ]] && survivor=$D2_HTTP
[[ $(http_get "$survivor" /readyz) == HTTP/1.[01]\ 200* ]] || { echo "loadbalancer: the surviving daemon is not ready" >&2; exit 1; }
echo "loadbalancer: all $N requests answered, the same classes as the direct run"
