// rANS entropy coder for quantized bottlenecks: 64-bit state, 32-bit renormalisation words,
// integer frequency tables with 16-bit precision. Integer arithmetic only, little-endian
// stream, so a stream written on one machine decodes identically on any other.
//
// A Table covers the symbols [offset, offset + n) of 8-bit codes plus an escape: a code outside
// the range is coded as the escape followed by its 8 bits coded flat (bypass), so every code
// can be coded whatever the table.
//
// Stream: the encoder's final state (u64) then its 32-bit words (u32 each), all little-endian,
// in the order the decoder reads them. The decoder checks that it ends in the encoder's initial
// state with every word consumed, so a truncated or corrupt stream is an error, and it never
// reads outside the bytes it was given.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "libsplit/status.h"

namespace libsplit::codec::rans {

constexpr int kScaleBits = 16;
constexpr uint32_t kScale = 1u << kScaleBits;
constexpr int kRawBits = 8;  // bypass width of an escaped code

struct DecodeView;
class Coder;

class Table {
 public:
  // freqs: one per symbol of [offset, offset + n), then the escape's; each at least 1, summing
  // to kScale; 0 <= offset and offset + n <= 256.
  // with_decoder = false leaves out the decoder's lookup (9 KiB); build_decoder() adds it later
  // (not thread-safe by itself).
  static Result<Table> create(int offset, const std::vector<uint32_t>& freqs, bool with_decoder = true);
  void build_decoder();
  bool has_decoder() const { return bucket_first_.size() == kBuckets; }
  // Frequencies for create() from observed counts (n symbols + escapes, same order): each at
  // least 1, summing to kScale, as close to the counts' proportions as that allows.
  static std::vector<uint32_t> normalize(const std::vector<uint64_t>& counts);

  int offset() const { return offset_; }
  size_t symbols() const { return freqs_.size() - 1; }  // without the escape
  const std::vector<uint32_t>& freqs() const { return freqs_; }

  static constexpr int kBucketBits = 12;  // the decoder's lookup: kScale slots in 2^12 buckets
  static constexpr uint32_t kBuckets = 1u << kBucketBits;

 private:
  friend class Coder;
  DecodeView view() const;

 public:  // the encoder's per-symbol constants (read by the coder only)
  struct EncSymbol {  // division-free encoding: x / freq by a reciprocal multiply
    uint64_t x_max;
    uint64_t rcp_freq;
    uint32_t bias;
    uint32_t cmpl_freq;
    uint32_t rcp_shift;
  };

 private:
  int offset_ = 0;
  std::vector<uint32_t> freqs_, starts_;
  std::vector<EncSymbol> enc_;
  // The decoder's lookup, small enough that the many tables of a context model stay in the
  // caches (one entry per slot would be 128 KiB each): the slots in kBuckets buckets, each
  // bucket's entry the symbol holding its first slot, from where a slot's own symbol is fewer
  // than kScale / kBuckets (16) steps on, usually none (a bucket shared by several symbols holds
  // rare ones); and per symbol its start | (freq - 1) << 16.
  std::vector<uint16_t> bucket_first_;
  std::vector<uint32_t> start_freq_;
};

// What chooses each symbol's table while a stream is decoded, from the symbols before it.
class SymbolContext {
 public:
  virtual ~SymbolContext() = default;
  virtual size_t table_for(size_t i) = 0;          // the table of symbol i (an index into tables)
  virtual void decoded(size_t i, uint8_t value) = 0;  // symbol i, as decoded
};

// encode/decode code values[i] with tables[(i / plane) % tables.size()]: one table per channel
// of an NCHW tensor when plane = H * W (or one table for everything). encode_indexed and
// decode_adaptive take each symbol's table from table_index[i] / the context instead: the same
// stream format, the tables chosen per symbol.
class Coder {
 public:
  static void encode(const uint8_t* values, size_t n, const std::vector<const Table*>& tables, size_t plane,
                     std::vector<uint8_t>* out);
  static Status decode(const uint8_t* data, size_t size, size_t n, const std::vector<const Table*>& tables,
                       size_t plane, uint8_t* values);
  // table_index[i] < tables.size() for every i (the caller's promise).
  static void encode_indexed(const uint8_t* values, const uint32_t* table_index, size_t n,
                             const std::vector<const Table*>& tables, std::vector<uint8_t>* out);
  static Status decode_adaptive(const uint8_t* data, size_t size, size_t n, const std::vector<const Table*>& tables,
                                SymbolContext* context);
};

}  // namespace libsplit::codec::rans
