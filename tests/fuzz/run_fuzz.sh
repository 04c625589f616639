#!/usr/bin/env bash
# Builds the protocol fuzzer with Debian's clang (libFuzzer, AddressSanitizer and
# UndefinedBehaviorSanitizer) and runs it for a fixed time over a copy of the committed seed
# corpus. A crash, leak, sanitizer report or time-out fails the test (libFuzzer exits non-zero and
# leaves the input as crash-* in WORK_DIR).
#   run_fuzz.sh SOURCE_DIR WORK_DIR [SECONDS (30)]
#   run_fuzz.sh SOURCE_DIR WORK_DIR --write-seeds   regenerates tests/fuzz/corpus/
set -euo pipefail
SRC=$1 WORK=$2 SECONDS_=${3:-30}
CXX=${LIBSPLIT_FUZZ_CXX:-clang++}
command -v "$CXX" > /dev/null || { echo "run_fuzz: $CXX not found (tools/install-deps.sh installs clang)" >&2; exit 1; }
mkdir -p "$WORK"
SOURCES=(common/status.cpp codec/crc32c.cpp codec/half.cpp codec/quantize.cpp codec/codec.cpp codec/rans.cpp codec/context.cpp codec/predict.cpp
  codec/tables.cpp codec/png.cpp protocol/wire.cpp protocol/frames.cpp protocol/frame_reader.cpp)
FLAGS=(-std=c++17 -g -O1 -I"$SRC/include" -I"$SRC/src")
srcs=()
for s in "${SOURCES[@]}"; do srcs+=("$SRC/src/$s"); done

if [[ $SECONDS_ == --write-seeds ]]; then
  "$CXX" "${FLAGS[@]}" -DLIBSPLIT_FUZZ_SEEDS "$SRC/tests/fuzz/protocol_fuzzer.cpp" "${srcs[@]}" -lzstd -lz -o "$WORK/write-seeds"
  rm -rf "$SRC/tests/fuzz/corpus" && mkdir -p "$SRC/tests/fuzz/corpus"
  "$WORK/write-seeds" "$SRC/tests/fuzz/corpus"
  ls "$SRC/tests/fuzz/corpus"
  exit 0
fi

echo "run_fuzz: building with $CXX (-fsanitize=fuzzer,address,undefined)"
"$CXX" "${FLAGS[@]}" -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  "$SRC/tests/fuzz/protocol_fuzzer.cpp" "${srcs[@]}" -lzstd -lz -o "$WORK/protocol_fuzzer"
rm -rf "$WORK/corpus" && cp -r "$SRC/tests/fuzz/corpus" "$WORK/corpus"
cd "$WORK"
echo "run_fuzz: $SECONDS_ s over $(ls corpus | wc -l) seeds"
./protocol_fuzzer -max_total_time="$SECONDS_" -seed=1 -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
  -print_final_stats=1 corpus 2>&1 | grep -E "INITED|DONE|stat::|ERROR|SUMMARY|Done|crash|leak|runtime error|Test unit" | tail -25
exit "${PIPESTATUS[0]}"
