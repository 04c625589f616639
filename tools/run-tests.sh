#!/usr/bin/env bash
# README command (b): install, build and run the whole test suite with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/build.sh
cd build/release
ctest --output-on-failure -j 2 --timeout 900
