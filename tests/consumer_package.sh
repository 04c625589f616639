#!/usr/bin/env bash
# libsplit as a package, the way a firmware project uses it: install into a scratch prefix,
# configure tests/consumer (find_package + one target_link_libraries line) against it, build
# the example device app there, and run one split inference through a split-server started
# here on a free loopback port. Also checks the pkg-config file.
#   consumer_package.sh BUILD_DIR SOURCE_DIR WORK_DIR FASHION_MNIST_DIR
set -euo pipefail
BUILD=$1 SRC=$2 WORK=$3 FMNIST=$4
rm -rf "$WORK"
mkdir -p "$WORK"
cmake --install "$BUILD" --prefix "$WORK/prefix" > "$WORK/install.log"
# split-train is installed as a command that runs from the prefix (its Python package beside it).
"$WORK/prefix/bin/split-train" --arch resnet18 --input-size 64 --list-splits > "$WORK/split-train.txt"
grep -q '^  layer1.1 ' "$WORK/split-train.txt" || { echo "FAIL: installed split-train"; cat "$WORK/split-train.txt"; exit 1; }
cmake -S "$SRC/tests/consumer" -B "$WORK/build" -G Ninja -DCMAKE_PREFIX_PATH="$WORK/prefix" \
  -DLIBSPLIT_EXAMPLE="$SRC/tools/examples/device_app.cpp" > "$WORK/configure.log"
cmake --build "$WORK/build" > "$WORK/build.log"

# pkg-config sees the installed library.
PKG_CONFIG_PATH="$WORK/prefix/lib/pkgconfig" pkg-config --exists libsplit
PKG_CONFIG_PATH="$WORK/prefix/lib/pkgconfig" pkg-config --libs libsplit | grep -q -- "-lsplit"

# One Fashion-MNIST test image as a binary PGM.
# (zcat stops early on a closed pipe: that is expected here, hence no pipefail for this line)
(set +o pipefail; printf 'P5\n28 28\n255\n'; zcat "$FMNIST/t10k-images-idx3-ubyte.gz" | head -c 800 | tail -c 784) \
  > "$WORK/image.pgm"
[[ $(stat -c %s "$WORK/image.pgm") -eq $((13 + 784)) ]]  # header + pixels

# The server from the installed package, on a port the kernel picks; it prints which on stdout,
# which this script reads line by line (no polling, bounded by read's timeout).
coproc SERVER { exec "$WORK/prefix/bin/split-server" --models "$SRC/models" --listen 127.0.0.1:0 2> "$WORK/server.log"; }
server=$SERVER_PID
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
port=""
while IFS= read -r -t 120 line <&"${SERVER[0]}"; do
  if [[ $line =~ listening\ on\ port\ ([0-9]+) ]]; then
    port=${BASH_REMATCH[1]}
    break
  fi
done
if [[ -z "$port" ]]; then
  echo "consumer_package: split-server did not start:" >&2
  cat "$WORK/server.log" >&2
  exit 1
fi
out=$("$WORK/build/consumer" "127.0.0.1:$port" "$SRC/models/fmnist-resnet" "$WORK/image.pgm")
echo "consumer: $out"
[[ $out =~ ^[0-9]+\ .*bytes\ sent ]] || { echo "consumer_package: unexpected output" >&2; exit 1; }
