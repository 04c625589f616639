#!/usr/bin/env bash
# README command (a): install, build, start split-server on loopback with the bundled
# Fashion-MNIST model, run split-client over the test set, print accuracy, wire bytes and
# per-stage latency percentiles, stop the server.
#   tools/run-demo.sh [--split ID|local|offload] [--limit N]   (defaults: the bundle's default split, 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
SPLIT=()
LIMIT=10000
while (($#)); do
  case "$1" in
    --split) SPLIT=(--split "$2"); shift 2 ;;
    --limit) LIMIT="$2"; shift 2 ;;
    *) echo "run-demo: unknown argument '$1' (expected --split ID or --limit N)" >&2; exit 2 ;;
  esac
done
bash tools/build.sh
BIN=build/release/tools
DATA=/usr/share/datasets/fashion-mnist
BUNDLE=models/fmnist-resnet

# Port 0: the server picks a free port and prints it; we read that line, no sleeping.
exec {SERVER_OUT}< <(exec "$BIN/split-server" --models models --listen 127.0.0.1:0 --threads 1 --log-level warn)
SERVER_PID=$!
trap 'kill "$SERVER_PID" 2>/dev/null || true' EXIT
read -r -t 120 line <&"$SERVER_OUT" || { echo "run-demo: split-server did not start" >&2; exit 1; }
PORT=${line##* }
echo "run-demo: split-server (pid $SERVER_PID) on 127.0.0.1:$PORT"

status=0
"$BIN/split-client" --server "127.0.0.1:$PORT" --bundle "$BUNDLE" "${SPLIT[@]}" \
  --input "$DATA/t10k-images-idx3-ubyte.gz" --labels "$DATA/t10k-labels-idx1-ubyte.gz" \
  --limit "$LIMIT" --quiet --json build/release/demo-summary.json || status=$?

kill -TERM "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
trap - EXIT
echo "run-demo: summary written to build/release/demo-summary.json; server stopped"
exit "$status"
