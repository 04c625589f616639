#!/usr/bin/env bash
# Installs every Debian 12 package that libsplit's build, tests and Python tools need.
# Idempotent: packages already present are skipped by apt, and apt-get update runs only
# when something is missing. Run as root (or through sudo).
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libtorch-dev                       # LibTorch 1.13 (C++), find_package(Torch)
  python3-torch python3-torchvision  # training and export tools
  python3-numpy python3-matplotlib
  python3-opencv python3-tqdm        # split-train: image decoding/resizing as the C++ runtime does it, progress bars
  dataset-fashion-mnist              # /usr/share/datasets/fashion-mnist/
  libopencv-dev                      # image decoding for preprocessing (optional in the core)
  libasio-dev                        # standalone Asio (header only)
  libspdlog-dev libfmt-dev
  nlohmann-json3-dev                 # manifest parsing
  zlib1g-dev                         # gzip IDX files
  libcli11-dev                       # command-line flags of the tools
  libgtest-dev libgmock-dev
  libbenchmark-dev                   # codec microbenchmarks
  libzstd-dev                        # the generic-compressor baseline in bench-codec
  time                               # peak memory in tools/device-footprint.sh
  haproxy                            # the load-balancer test in front of two daemons
  libssl-dev openssl                 # TLS (LIBSPLIT_WITH_TLS) and the test certificates
  clang libclang-rt-14-dev           # libFuzzer + sanitizers for the protocol fuzzer (tests/fuzz)
  libopenblas0-openmp                # an optimised BLAS for LibTorch (the reference BLAS is 2.5-7x slower)
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "install-deps: installing ${#missing[@]} packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "install-deps: done"
