#!/usr/bin/env bash
# The device-only build and its footprint: libsplit without the server and without OpenCV,
# plus split-client. Checks, from the linker's own record (a link map) and the dynamic section,
# that no server code, OpenCV or OpenSSL went in; reports the library's size and split-client's
# peak resident memory on the Fashion-MNIST bundle against a server from the regular build.
#   tools/device-footprint.sh [IMAGES (1000)]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
bash tools/build.sh  # the regular build: its split-server plays the edge
cmake -S . -B build/device -G Ninja -DCMAKE_BUILD_TYPE=MinSizeRel -DLIBSPLIT_WITH_SERVER=OFF -DLIBSPLIT_WITH_OPENCV=OFF -DLIBSPLIT_WITH_TLS=OFF \
  -DLIBSPLIT_BUILD_TESTS=OFF -DLIBSPLIT_BUILD_BENCHMARKS=OFF -DCMAKE_SHARED_LINKER_FLAGS="-Wl,-Map=libsplit.map" > /dev/null
jobs=$(nproc); ((jobs > 2)) && jobs=2
cmake --build build/device -j "$jobs" --target libsplit split-client
lib=$(readlink -f build/device/src/libsplit.so)
map=build/device/libsplit.map
fail=0
if grep -q "server/server.cpp" "$map"; then echo "FAIL: server code in the link map"; fail=1; fi
if grep -qiE "opencv|libssl|libcrypto" "$map"; then echo "FAIL: OpenCV or OpenSSL in the link map"; fail=1; fi
if readelf -d "$lib" | grep NEEDED | grep -qiE "opencv|ssl|crypto"; then echo "FAIL: OpenCV or OpenSSL needed at run time"; fail=1; fi
if nm -DC --defined-only "$lib" | grep -q "libsplit::Server::"; then echo "FAIL: Server symbols exported"; fail=1; fi
((fail)) && exit 1
echo "device-only libsplit.so: no server code, no OpenCV, no OpenSSL (link map and dynamic section checked)"
size=$(stat -c %s "$lib")
strip -o build/device/libsplit.stripped.so "$lib"
stripped=$(stat -c %s build/device/libsplit.stripped.so)
echo "size: $size bytes ($stripped stripped); exported symbols: $(nm -D --defined-only "$lib" | wc -l)"
echo "NEEDED: $(readelf -d "$lib" | grep NEEDED | sed 's/.*\[\(.*\)\]/\1/' | tr '\n' ' ')"

coproc SERVER { exec build/release/tools/split-server --models models/fmnist-resnet --listen 127.0.0.1:0 2> build/device/server.log; }
server=$SERVER_PID
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
port=""
while IFS= read -r -t 120 line <&"${SERVER[0]}"; do
  [[ $line =~ listening\ on\ port\ ([0-9]+) ]] && { port=${BASH_REMATCH[1]}; break; }
done
[[ -n $port ]] || { echo "split-server did not start" >&2; cat build/device/server.log >&2; exit 1; }
/usr/bin/time -v build/device/tools/split-client --server "127.0.0.1:$port" --bundle models/fmnist-resnet \
  --input /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz \
  --labels /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz --limit "$N" --quiet 2> build/device/time.log
grep -E "Maximum resident set size" build/device/time.log
