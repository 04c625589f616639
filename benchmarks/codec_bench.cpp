// bench-codec (Google Benchmark): throughput of the bottleneck codec's stages on one core, in
// bytes of symbols (one 8-bit code per element) per second:
//   quantize + pack (8 and 4 bits), rANS encode and decode with a table calibrated on the same
//   data, and zstd (level 1 and 3) on the same codes as the generic baseline.
// The data: a [1,64,56,56] float bottleneck, Gaussian (seeded), quantized per tensor at 8 bits.
// ContextEncode/ContextDecode: q8rans through a context model's tables (format 3; the bundle's
// bf4.tables, or the file LIBSPLIT_CONTEXT_TABLES names), on 1000 samples of Gaussian codes.
//   bench-codec [--benchmark_min_time=0.5] [--benchmark_format=json]
#include <benchmark/benchmark.h>
#include <zstd.h>

#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "codec/quantize.h"
#include "codec/rans.h"
#include "codec/tables.h"
#include "libsplit/codec.h"

namespace {

namespace codec = libsplit::codec;
namespace rans = libsplit::codec::rans;

constexpr size_t kElements = 64 * 56 * 56;

struct Data {
  std::vector<float> x;
  std::vector<uint8_t> codes;
  codec::QuantParams params;
  rans::Table table;
  std::vector<uint8_t> stream;
  Data() : x(kElements), codes(kElements) {
    std::mt19937 rng(11);
    std::normal_distribution<float> g(0.f, 1.f);
    for (auto& v : x) v = g(rng);
    params = codec::choose_params(x.data(), x.size(), 8);
    codec::quantize(x.data(), x.size(), params, 8, codes.data());
    std::vector<uint64_t> counts(257, 0);
    for (uint8_t c : codes) ++counts[c];
    table = std::move(*rans::Table::create(0, rans::Table::normalize(counts)));
    rans::Coder::encode(codes.data(), codes.size(), {&table}, 0, &stream);
  }
};
const Data& data() {
  static Data d;
  return d;
}

void finish(benchmark::State& state, size_t out_bytes) {
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(kElements));
  state.counters["out_bytes"] = double(out_bytes);
  state.counters["ratio_pct"] = 100.0 * double(out_bytes) / double(kElements);
}

void QuantizePack(benchmark::State& state) {
  const auto& d = data();
  const int bits = int(state.range(0));
  std::vector<uint8_t> codes(kElements), packed(kElements);
  for (auto _ : state) {
    auto p = codec::choose_params(d.x.data(), kElements, bits);
    codec::quantize(d.x.data(), kElements, p, bits, codes.data());
    codec::pack(codes.data(), kElements, bits, packed.data());
    benchmark::DoNotOptimize(packed.data());
  }
  finish(state, (kElements * size_t(bits) + 7) / 8);
}
BENCHMARK(QuantizePack)->Arg(8)->Arg(4);

void RansEncode(benchmark::State& state) {
  const auto& d = data();
  std::vector<uint8_t> out;
  for (auto _ : state) {
    out.clear();
    rans::Coder::encode(d.codes.data(), kElements, {&d.table}, 0, &out);
    benchmark::DoNotOptimize(out.data());
  }
  finish(state, d.stream.size());
}
BENCHMARK(RansEncode);

void RansDecode(benchmark::State& state) {
  const auto& d = data();
  std::vector<uint8_t> back(kElements);
  for (auto _ : state) {
    auto st = rans::Coder::decode(d.stream.data(), d.stream.size(), kElements, {&d.table}, 0, back.data());
    if (!st.ok() || back != d.codes) state.SkipWithError("decode mismatch");
    benchmark::DoNotOptimize(back.data());
  }
  finish(state, d.stream.size());
}
BENCHMARK(RansDecode);

void ZstdCompress(benchmark::State& state) {
  const auto& d = data();
  std::vector<uint8_t> out(ZSTD_compressBound(kElements));
  size_t n = 0;
  for (auto _ : state) {
    n = ZSTD_compress(out.data(), out.size(), d.codes.data(), kElements, int(state.range(0)));
    benchmark::DoNotOptimize(out.data());
  }
  finish(state, n);
}
BENCHMARK(ZstdCompress)->Arg(1)->Arg(3);

void ZstdDecompress(benchmark::State& state) {
  const auto& d = data();
  std::vector<uint8_t> z(ZSTD_compressBound(kElements)), back(kElements);
  z.resize(ZSTD_compress(z.data(), z.size(), d.codes.data(), kElements, int(state.range(0))));
  for (auto _ : state) {
    const size_t n = ZSTD_decompress(back.data(), back.size(), z.data(), z.size());
    if (n != kElements) state.SkipWithError("zstd decode failed");
    benchmark::DoNotOptimize(back.data());
  }
  finish(state, z.size());
}
BENCHMARK(ZstdDecompress)->Arg(1)->Arg(3);

struct ContextData {
  std::shared_ptr<const libsplit::EntropyTables> tables;
  std::string error;
  libsplit::Tensor x;
  libsplit::EncodedTensor coded;
  ContextData() {
    const char* env = std::getenv("LIBSPLIT_CONTEXT_TABLES");
    const std::string path = env ? env : LIBSPLIT_SOURCE_DIR "/models/fmnist-resnet/bf4.tables";
    auto t = libsplit::EntropyTables::load(path);
    if (!t.ok()) {
      error = t.status().to_string();
      return;
    }
    tables = *t;
    const size_t per = tables->impl().context.elements;
    if (per == 0) {
      error = path + " has no context model (tables format 3)";
      return;
    }
    x.shape = {1000, int64_t(per)};
    std::mt19937 rng(12);
    std::normal_distribution<float> g(0.f, 1.f);
    x.data.resize(1000 * per);
    for (auto& v : x.data) v = g(rng);
    auto st = libsplit::encode(x, libsplit::CodecSpec{libsplit::CodecKind::kQuantRans, 8}, &coded, tables.get());
    if (!st.ok()) error = st.to_string();
  }
};
const ContextData& context_data() {
  static ContextData d;
  return d;
}

void ContextEncode(benchmark::State& state) {
  const auto& d = context_data();
  if (!d.error.empty()) return state.SkipWithError(d.error.c_str());
  libsplit::EncodedTensor e;
  for (auto _ : state) {
    auto st = libsplit::encode(d.x, d.coded.codec, &e, d.tables.get());
    benchmark::DoNotOptimize(e.payload.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(d.x.data.size()));
  state.counters["samples_per_s"] = benchmark::Counter(double(state.iterations()) * 1000.0, benchmark::Counter::kIsRate);
}
BENCHMARK(ContextEncode);

void ContextDecode(benchmark::State& state) {
  const auto& d = context_data();
  if (!d.error.empty()) return state.SkipWithError(d.error.c_str());
  libsplit::Tensor out;
  for (auto _ : state) {
    auto st = libsplit::decode(d.coded, &out, d.tables.get());
    if (!st.ok()) state.SkipWithError("context decode failed");
    benchmark::DoNotOptimize(out.data.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(d.x.data.size()));
  state.counters["samples_per_s"] = benchmark::Counter(double(state.iterations()) * 1000.0, benchmark::Counter::kIsRate);
}
BENCHMARK(ContextDecode);

}  // namespace

BENCHMARK_MAIN();
