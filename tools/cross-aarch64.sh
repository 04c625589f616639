#!/usr/bin/env bash
# Cross-builds libsplit for aarch64 (Jetson Nano, Raspberry Pi with a 64-bit OS) with Debian's
# arm64 toolchain and runs the unit tests under qemu-user. Run as root on Debian 12 (x86-64).
#   tools/cross-aarch64.sh [ctest regex]
#
# By default it runs every test but the EndToEnd ones: those push thousands of TorchScript
# forward passes through a server with deadlines sized for real hardware, which emulation
# (about 50x slower) cannot meet; give a regex ('EndToEnd' for instance) to run them anyway.
# The find_package consumer test needs the host compiler and is left out of cross builds.
#
# The arm64 libraries (LibTorch and what it needs, spdlog, fmt, GoogleTest, zlib, zstd) come from
# Debian's arm64 packages, downloaded with apt-get and unpacked into build/aarch64/sysroot rather
# than installed: installing libtorch-dev:arm64 next to the amd64 one is refused by apt (the -dev
# packages are not co-installable), so the sysroot keeps the host's own packages untouched.
# The build uses cmake/aarch64-linux-gnu.cmake; device-only choices (no OpenCV) as on a board.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=build/aarch64
sysroot=$root/$work/sysroot
t0=$(date +%s)

bash tools/install-deps.sh  # host side: cmake, ninja, python3-torch for the test fixtures
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
need_update=0
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "cross-aarch64: enabling the arm64 architecture in dpkg (for package lists only)"
  $SUDO dpkg --add-architecture arm64
  need_update=1
fi
if ! apt-cache show libtorch1.13:arm64 > /dev/null 2>&1; then need_update=1; fi
host_pkgs=(crossbuild-essential-arm64 qemu-user)
for p in "${host_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_update=2
done
((need_update)) && $SUDO apt-get update -q
((need_update == 2)) && $SUDO apt-get install -y -q --no-install-recommends "${host_pkgs[@]}"

# The arm64 package set: what the build links, with every run-time dependency, plus the
# header-only packages (architecture "all").
roots=(libtorch-dev:arm64 libtorch1.13:arm64 libspdlog-dev:arm64 libfmt-dev:arm64 libgtest-dev:arm64
       libgmock-dev:arm64 zlib1g-dev:arm64 libzstd-dev:arm64 libc6-dev:arm64)
arch_all=(nlohmann-json3-dev libasio-dev libcli11-dev)
mkdir -p "$work/debs"
{
  apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances "${roots[@]}" 2>/dev/null | grep -v '^ ' | grep ':arm64$' | sort -u
  printf '%s\n' "${arch_all[@]}"
} > "$work/packages.new"
# Only a changed package set touches the list (and so re-makes the sysroot below).
if cmp -s "$work/packages.new" "$work/packages.txt"; then rm "$work/packages.new"; else mv "$work/packages.new" "$work/packages.txt"; fi
echo "cross-aarch64: $(wc -l < "$work/packages.txt") packages in the sysroot"
todo=()
while read -r p; do
  name=${p%:arm64}
  compgen -G "$work/debs/${name}_*.deb" > /dev/null || todo+=("$p")
done < "$work/packages.txt"
if ((${#todo[@]})); then
  echo "cross-aarch64: downloading ${#todo[@]} packages"
  (cd "$work/debs" && apt-get download -q "${todo[@]}" 2>&1 | grep -v "unsandboxed" | tail -1)
fi

stamp=$work/sysroot.stamp
if [[ ! -f $stamp || $work/packages.txt -nt $stamp ]]; then
  echo "cross-aarch64: unpacking into $work/sysroot"
  rm -rf "$sysroot"
  mkdir -p "$sysroot"
  for f in "$work"/debs/*.deb; do dpkg-deb -x "$f" "$sysroot"; done
  # Absolute symbolic links would point into the host: make them relative to the sysroot.
  while IFS= read -r link; do
    target=$(readlink "$link")
    ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$sysroot$target")" "$link"
  done < <(find "$sysroot" -type l -lname '/*')
  # What update-alternatives would link on a board: the reference BLAS and LAPACK.
  for lib in blas lapack; do
    ln -sfn "$lib/lib$lib.so.3" "$sysroot/usr/lib/aarch64-linux-gnu/lib$lib.so.3"
  done
  touch "$stamp"
fi

cmake -S . -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_TOOLCHAIN_FILE="$root/cmake/aarch64-linux-gnu.cmake" -DLIBSPLIT_SYSROOT="$sysroot" \
  -DLIBSPLIT_WITH_OPENCV=OFF -DLIBSPLIT_WITH_TLS=OFF -DLIBSPLIT_BUILD_BENCHMARKS=OFF
jobs=$(nproc); ((jobs > 2)) && jobs=2
cmake --build "$work/build" -j "$jobs"
t1=$(date +%s)
file "$work/build/src/libsplit.so.0" 2>/dev/null || file "$(readlink -f "$work/build/src/libsplit.so")"

cd "$work/build"
if (($#)); then
  ctest --output-on-failure -j "$jobs" --timeout 1800 -R "$1"
else
  ctest --output-on-failure -j "$jobs" --timeout 1800 -E '^EndToEnd\.'
fi
t2=$(date +%s)
echo "cross-aarch64: build $((t1 - t0)) s, tests under qemu-user $((t2 - t1)) s"
