#!/usr/bin/env bash
# The operator's files: tools/service/split-server.toml parses, is what --print-config prints back,
# flags win over it, mistakes in it are errors that name them; the systemd unit passes
# systemd-analyze verify (where systemd is installed); and a daemon started from a config file
# serves, reports ready, and exits 0 on SIGTERM.
#   service_config.sh BUILD_DIR SOURCE_DIR WORK_DIR
set -euo pipefail
BUILD=$1 SRC=$2 WORK=$3
SERVER=$BUILD/tools/split-server
CONF=$SRC/tools/service/split-server.toml
UNIT=$SRC/tools/service/split-server.service
rm -rf "$WORK" && mkdir -p "$WORK"
fail() { echo "service_config: $*" >&2; exit 1; }

"$SERVER" --config "$CONF" --print-config > "$WORK/printed.toml"
grep -qx 'models="/var/lib/libsplit/models"' "$WORK/printed.toml" || fail "models not read from the config file"
grep -qx 'http="127.0.0.1:9090"' "$WORK/printed.toml" || fail "http not read from the config file"
"$SERVER" --config "$WORK/printed.toml" --print-config | diff - "$WORK/printed.toml" > /dev/null ||
  fail "--print-config output does not read back as the same configuration"
"$SERVER" --config "$CONF" --max-batch 4 --print-config | grep -qx 'max-batch=4' || fail "a flag did not win over the file"

printf 'models = "x"\nmax-bach = 3\n' > "$WORK/typo.toml"
if "$SERVER" --config "$WORK/typo.toml" --print-config > "$WORK/typo.out" 2>&1; then fail "an unknown key was accepted"; fi
grep -q "max-bach" "$WORK/typo.out" || fail "the error does not name the unknown key: $(cat "$WORK/typo.out")"
printf 'models = "x"\nmax-batch = 0\n' > "$WORK/range.toml"
if "$SERVER" --config "$WORK/range.toml" --print-config > "$WORK/range.out" 2>&1; then fail "max-batch = 0 was accepted"; fi
grep -q "max-batch" "$WORK/range.out" || fail "the error does not name max-batch: $(cat "$WORK/range.out")"

if command -v systemd-analyze > /dev/null; then
  # The unit as installed, with ExecStart pointing at this build's binary.
  sed "s|^ExecStart=/usr/local/bin/split-server|ExecStart=$(readlink -f "$SERVER")|" "$UNIT" > "$WORK/split-server.service"
  systemd-analyze verify "$WORK/split-server.service" > "$WORK/verify.out" 2>&1 || true
  if grep -v "^$" "$WORK/verify.out" | grep -q .; then fail "systemd-analyze verify: $(cat "$WORK/verify.out")"; fi
  echo "service_config: systemd-analyze verify passed"
else
  echo "service_config: systemd-analyze not installed: the unit file was not verified"
fi

# A daemon from a config file: ready, serves, drains on SIGTERM and exits 0.
sed -e "s|^models = .*|models = \"$SRC/models\"|" -e 's|^listen = .*|listen = "127.0.0.1:0"|' \
  -e 's|^http = .*|http = "127.0.0.1:0"|' -e 's|^log-level = .*|log-level = "warn"|' "$CONF" > "$WORK/run.toml"
exec {fd}< <(exec "$SERVER" --config "$WORK/run.toml")
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
read -r -t 120 line <&"$fd" || fail "split-server did not start from the config file"
port=${line##* }
read -r -t 10 line <&"$fd" || fail "split-server did not report its HTTP port"
http_port=${line##* }
exec {h}<> "/dev/tcp/127.0.0.1/$http_port"
printf 'GET /readyz HTTP/1.0\r\n\r\n' >&"$h"
[[ $(head -1 <&"$h") == HTTP/1.[01]\ 200* ]] || fail "/readyz is not 200"
exec {h}<&-
FMNIST=${LIBSPLIT_FMNIST_DIR:-/usr/share/datasets/fashion-mnist}
"$BUILD/tools/split-client" --server "127.0.0.1:$port" --bundle "$SRC/models/fmnist-resnet" \
  --input "$FMNIST/t10k-images-idx3-ubyte.gz" --limit 20 --quiet > "$WORK/client.out" || fail "split-client failed"
grep -q ": 20 requests, 0 failures" "$WORK/client.out" || fail "not every request was answered"
kill -TERM "$pid"
set +e
wait "$pid"
rc=$?
set -e
trap - EXIT
((rc == 0)) || fail "split-server exited $rc after SIGTERM"
echo "service_config: config file, flags, errors, unit and a daemon from a config file: all as expected"
