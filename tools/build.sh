#!/usr/bin/env bash
# Installs dependencies (tools/install-deps.sh) and builds libsplit, its tools and tests in
# build/release. Usage: tools/build.sh [extra cmake -D options]
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
# One job per core, capped at 2: each LibTorch translation unit needs ~1.5 GiB to compile.
jobs=$(nproc); ((jobs > 2)) && jobs=2
cmake --build build/release -j "$jobs"
