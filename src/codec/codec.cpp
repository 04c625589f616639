#include "libsplit/codec.h"

#include <cmath>
#include <cstring>
#include <limits>

#include <zstd.h>

#include "codec/half.h"
#include "codec/png.h"
#include "codec/quantize.h"
#include "codec/rans.h"
#include "codec/tables.h"
#include "common/errors.h"

namespace libsplit {

using detail::invalid_argument;

namespace {

Status check_spec(const CodecSpec& s) {
  switch (s.kind) {
    case CodecKind::kFloat32:
      if (s.bits != 32) return invalid_argument("codec f32 has 32 bits, got ", s.bits);
      return {};
    case CodecKind::kFloat16:
      if (s.bits != 16) return invalid_argument("codec f16 has 16 bits, got ", s.bits);
      return {};
    case CodecKind::kImageU8:
    case CodecKind::kImagePng:
      if (s.bits != 8) return invalid_argument("codec ", codec_name(s), " has 8 bits, got ", s.bits);
      return {};
    case CodecKind::kQuantPerTensor:
    case CodecKind::kQuantPerChannel:
      if (s.bits != 2 && s.bits != 4 && s.bits != 8)
        return invalid_argument("quantized codec bits must be 2, 4 or 8, got ", s.bits);
      return {};
    case CodecKind::kQuantRans:
    case CodecKind::kQuantZstd:
    case CodecKind::kSymbolRans:
      if (s.bits != 8) return invalid_argument("codec ", codec_name(s), " has 8 bits, got ", s.bits);
      return {};
  }
  return invalid_argument("unknown codec kind ", int(s.kind));
}

// The table set for a tensor of n elements, or an error that names what is missing.
Status check_tables(const CodecSpec& spec, const EntropyTables* tables, int64_t n) {
  if (tables == nullptr)
    return detail::failed_precondition("codec ", codec_name(spec), " needs the split's entropy tables (none loaded)");
  Status st = tables->check_elements(n);
  if (!st.ok()) return invalid_argument("codec ", codec_name(spec), ": ", st.message());
  return {};
}

uint8_t symbol_code(float v) {
  const float r = std::nearbyint(v);
  if (!(r >= -128.f)) return 0;  // NaN too
  if (r >= 127.f) return 255;
  return uint8_t(int(r) + 128);
}

uint8_t pixel_byte(float v) {
  const float r = std::nearbyint(v);
  return r >= 255.f ? 255 : r > 0.f ? uint8_t(r) : 0;
}

// [1, C, H, W] with C = 1 or 3: the image a png payload carries.
Status image_dims(const std::vector<int64_t>& shape, int* c, int* h, int* w) {
  if (shape.size() != 4 || shape[0] != 1 || (shape[1] != 1 && shape[1] != 3) || shape[2] < 1 || shape[3] < 1 ||
      shape[2] > (1 << 14) || shape[3] > (1 << 14))
    return invalid_argument("codec png carries one image of shape [1, C, H, W] with C 1 or 3, got ",
                            shape_to_string(shape));
  *c = int(shape[1]);
  *h = int(shape[2]);
  *w = int(shape[3]);
  return {};
}

// Element count of a shape, or -1 if a dimension is negative or the product overflows 2^40.
int64_t checked_count(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return -1;
    if (d != 0 && n > (int64_t(1) << 40) / d) return -1;
    n *= d;
  }
  return n;
}

}  // namespace

Result<CodecSpec> parse_codec(const std::string& name) {
  if (name == "f32") return CodecSpec{CodecKind::kFloat32, 32};
  if (name == "f16") return CodecSpec{CodecKind::kFloat16, 16};
  if (name == "u8image") return CodecSpec{CodecKind::kImageU8, 8};
  if (name == "q8rans") return CodecSpec{CodecKind::kQuantRans, 8};
  if (name == "q8zstd") return CodecSpec{CodecKind::kQuantZstd, 8};
  if (name == "s8rans") return CodecSpec{CodecKind::kSymbolRans, 8};
  if (name == "png") return CodecSpec{CodecKind::kImagePng, 8};
  for (int bits : {2, 4, 8}) {
    const std::string q = "q" + std::to_string(bits);
    if (name == q) return CodecSpec{CodecKind::kQuantPerTensor, bits};
    if (name == q + "c") return CodecSpec{CodecKind::kQuantPerChannel, bits};
  }
  return invalid_argument("unknown codec \"", name,
                          "\": expected one of f32, f16, q8, q4, q2, q8c, q4c, q2c, u8image, png, q8rans, q8zstd, s8rans");
}

bool needs_tables(const CodecSpec& s) {
  return s.kind == CodecKind::kQuantRans || s.kind == CodecKind::kSymbolRans;
}

bool is_variable_length(const CodecSpec& s) {
  return needs_tables(s) || s.kind == CodecKind::kQuantZstd || s.kind == CodecKind::kImagePng;
}

bool is_image(const CodecSpec& s) { return s.kind == CodecKind::kImageU8 || s.kind == CodecKind::kImagePng; }

std::string codec_name(const CodecSpec& s) {
  switch (s.kind) {
    case CodecKind::kQuantRans: return "q8rans";
    case CodecKind::kQuantZstd: return "q8zstd";
    case CodecKind::kSymbolRans: return "s8rans";
    case CodecKind::kImagePng: return "png";
    case CodecKind::kFloat32: return "f32";
    case CodecKind::kFloat16: return "f16";
    case CodecKind::kImageU8: return "u8image";
    case CodecKind::kQuantPerTensor: return "q" + std::to_string(s.bits);
    case CodecKind::kQuantPerChannel: return "q" + std::to_string(s.bits) + "c";
  }
  return "unknown";
}

size_t payload_size(const CodecSpec& spec, int64_t elements) {
  const auto n = size_t(elements);
  switch (spec.kind) {
    case CodecKind::kFloat32: return n * 4;
    case CodecKind::kFloat16: return n * 2;
    case CodecKind::kImageU8:
    case CodecKind::kImagePng:
    case CodecKind::kQuantRans:
    case CodecKind::kQuantZstd:
    case CodecKind::kSymbolRans: return n;
    case CodecKind::kQuantPerTensor:
    case CodecKind::kQuantPerChannel: {
      const size_t per_byte = size_t(8 / (spec.bits > 0 ? spec.bits : 8));
      return (n + per_byte - 1) / per_byte;
    }
  }
  return 0;
}

Status encode(const Tensor& t, const CodecSpec& spec, EncodedTensor* out, const EntropyTables* tables) {
  LIBSPLIT_RETURN_IF_ERROR(check_spec(spec));
  const int64_t n = checked_count(t.shape);
  if (n < 0) return invalid_argument("tensor shape ", shape_to_string(t.shape), " is invalid");
  if (size_t(n) != t.data.size())
    return invalid_argument("tensor shape ", shape_to_string(t.shape), " has ", n,
                            " elements but the data has ", t.data.size());
  out->codec = spec;
  out->shape = t.shape;
  out->scales.clear();
  out->zero_points.clear();
  out->table_version = 0;
  const float* x = t.data.data();
  if (spec.kind == CodecKind::kImagePng) {
    int c = 0, h = 0, w = 0;
    LIBSPLIT_RETURN_IF_ERROR(image_dims(t.shape, &c, &h, &w));
    std::vector<uint8_t> pixels(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) pixels[size_t(i)] = pixel_byte(x[i]);
    return codec::png::encode(pixels.data(), c, h, w, &out->payload);
  }
  if (is_variable_length(spec)) {
    if (needs_tables(spec)) LIBSPLIT_RETURN_IF_ERROR(check_tables(spec, tables, n));
    if (n == 0) return invalid_argument("cannot code an empty tensor with ", codec_name(spec));
    std::vector<uint8_t> codes(static_cast<size_t>(n));
    if (spec.kind == CodecKind::kSymbolRans) {
      for (int64_t i = 0; i < n; ++i) codes[size_t(i)] = symbol_code(x[i]);
    } else {
      const auto p = codec::choose_params(x, size_t(n), 8);
      codec::quantize(x, size_t(n), p, 8, codes.data());
      out->scales.push_back(p.scale);
      out->zero_points.push_back(p.zero_point);
    }
    out->payload.clear();
    if (spec.kind == CodecKind::kQuantZstd) {
      out->payload.resize(ZSTD_compressBound(codes.size()));
      const size_t r = ZSTD_compress(out->payload.data(), out->payload.size(), codes.data(), codes.size(), 3);
      if (ZSTD_isError(r)) return detail::internal_error("zstd: ", ZSTD_getErrorName(r));
      out->payload.resize(r);
      return {};
    }
    const auto& tt = tables->impl();
    if (!tt.context.empty()) {  // residuals, each with the table the context model picks
      std::vector<uint8_t> symbols(codes.size());
      std::vector<uint32_t> which(codes.size());
      tt.context.to_symbols(codes.data(), codes.size(), symbols.data(), which.data());
      codec::rans::Coder::encode_indexed(symbols.data(), which.data(), symbols.size(), tt.pointers, &out->payload);
      out->table_version = tt.version;
      return {};
    }
    if (!tt.predictor.empty()) {  // code the prediction residuals instead
      std::vector<uint8_t> symbols(codes.size());
      tt.predictor.to_symbols(codes.data(), codes.size(), symbols.data());
      codes.swap(symbols);
    }
    codec::rans::Coder::encode(codes.data(), codes.size(), tt.pointers, codes.size() / tt.pointers.size(),
                               &out->payload);
    out->table_version = tt.version;
    return {};
  }
  out->payload.assign(payload_size(spec, n), 0);
  switch (spec.kind) {
    case CodecKind::kFloat32:
      for (int64_t i = 0; i < n; ++i) {
        uint32_t b;
        std::memcpy(&b, &x[i], 4);
        for (int k = 0; k < 4; ++k) out->payload[size_t(i) * 4 + size_t(k)] = uint8_t(b >> (8 * k));
      }
      return {};
    case CodecKind::kFloat16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = codec::float_to_half(x[i]);
        out->payload[size_t(i) * 2] = uint8_t(h);
        out->payload[size_t(i) * 2 + 1] = uint8_t(h >> 8);
      }
      return {};
    case CodecKind::kImageU8:
      for (int64_t i = 0; i < n; ++i) out->payload[size_t(i)] = pixel_byte(x[i]);
      return {};
    case CodecKind::kQuantPerTensor:
    case CodecKind::kQuantPerChannel:
    case CodecKind::kQuantRans:
    case CodecKind::kQuantZstd:
    case CodecKind::kSymbolRans:
    case CodecKind::kImagePng:
      break;
  }
  if (n == 0) return invalid_argument("cannot quantize an empty tensor");
  std::vector<uint8_t> codes(static_cast<size_t>(n));
  if (spec.kind == CodecKind::kQuantPerTensor) {
    const auto p = codec::choose_params(x, size_t(n), spec.bits);
    codec::quantize(x, size_t(n), p, spec.bits, codes.data());
    out->scales.push_back(p.scale);
    out->zero_points.push_back(p.zero_point);
  } else {
    if (t.shape.size() < 2 || t.shape[1] == 0)
      return invalid_argument("per-channel quantization needs a shape [N, C, ...] with C > 0, got ",
                              shape_to_string(t.shape));
    const int64_t outer = t.shape[0], channels = t.shape[1];
    const int64_t inner = n / (outer * channels);
    out->scales.resize(size_t(channels));
    out->zero_points.resize(size_t(channels));
    std::vector<float> slice(size_t(outer * inner));
    for (int64_t c = 0; c < channels; ++c) {
      for (int64_t o = 0; o < outer; ++o)
        std::memcpy(&slice[size_t(o * inner)], &x[(o * channels + c) * inner], size_t(inner) * 4);
      const auto p = codec::choose_params(slice.data(), slice.size(), spec.bits);
      out->scales[size_t(c)] = p.scale;
      out->zero_points[size_t(c)] = p.zero_point;
      for (int64_t o = 0; o < outer; ++o)
        codec::quantize(&x[(o * channels + c) * inner], size_t(inner), p, spec.bits,
                        &codes[size_t((o * channels + c) * inner)]);
    }
  }
  codec::pack(codes.data(), codes.size(), spec.bits, out->payload.data());
  return {};
}

namespace {

// The 8-bit codes of a variable-length payload.
// Rebuilds the codes of whole samples as their residuals are decoded, and tells the coder which
// table each next residual was coded with.
class ContextDecoder : public codec::rans::SymbolContext {
 public:
  ContextDecoder(const codec::ContextModel& m, uint8_t* codes) : m_(m), codes_(codes) {}
  size_t table_for(size_t i) override {
    const size_t at = i % m_.elements;
    if (at == 0) m_.begin(&sample_);
    uint32_t table;
    m_.predict(&sample_, at, &prediction_, &table);
    return table;
  }
  void decoded(size_t i, uint8_t symbol) override {
    const uint8_t code = uint8_t(symbol + prediction_ - 128);
    codes_[i] = code;
    codec::ContextModel::set_code(&sample_, i % m_.elements, code);
  }

 private:
  const codec::ContextModel& m_;
  uint8_t* codes_;
  codec::ContextModel::Sample sample_;
  uint8_t prediction_ = 0;
};

Status decode_codes(const EncodedTensor& e, int64_t n, const EntropyTables* tables, std::vector<uint8_t>* codes) {
  codes->resize(size_t(n));
  if (e.codec.kind == CodecKind::kQuantZstd) {
    const unsigned long long content = ZSTD_getFrameContentSize(e.payload.data(), e.payload.size());
    if (content == ZSTD_CONTENTSIZE_ERROR)
      return detail::data_loss("codec q8zstd: the payload is not a zstd frame");
    if (content != ZSTD_CONTENTSIZE_UNKNOWN && content != uint64_t(n))
      return invalid_argument("codec q8zstd: the frame holds ", content, " codes, the shape ",
                              shape_to_string(e.shape), " needs ", n);
    const size_t r = ZSTD_decompress(codes->data(), codes->size(), e.payload.data(), e.payload.size());
    if (ZSTD_isError(r)) return detail::data_loss("codec q8zstd: ", ZSTD_getErrorName(r));
    if (r != size_t(n))
      return invalid_argument("codec q8zstd: the frame holds ", r, " codes, the shape needs ", n);
    return {};
  }
  LIBSPLIT_RETURN_IF_ERROR(check_tables(e.codec, tables, n));
  const auto& tt = tables->impl();
  if (e.table_version != tt.version)
    return detail::failed_precondition("codec ", codec_name(e.codec), ": coded with tables version ",
                                       e.table_version, ", these are version ", tt.version,
                                       " (device and edge have different bundles)");
  tt.ensure_decoders();
  if (!tt.context.empty()) {
    ContextDecoder ctx(tt.context, codes->data());
    Status st = codec::rans::Coder::decode_adaptive(e.payload.data(), e.payload.size(), size_t(n), tt.pointers, &ctx);
    if (!st.ok()) return detail::data_loss("codec ", codec_name(e.codec), ": ", st.message());
    return {};
  }
  Status st = codec::rans::Coder::decode(e.payload.data(), e.payload.size(), size_t(n), tt.pointers,
                                         size_t(n) / tt.pointers.size(), codes->data());
  if (!st.ok()) return detail::data_loss("codec ", codec_name(e.codec), ": ", st.message());
  if (!tt.predictor.empty()) {  // the stream held prediction residuals
    std::vector<uint8_t> symbols(codes->size());
    symbols.swap(*codes);
    tt.predictor.to_codes(symbols.data(), symbols.size(), codes->data());
  }
  return {};
}

}  // namespace

Status decode(const EncodedTensor& e, Tensor* out, const EntropyTables* tables) {
  LIBSPLIT_RETURN_IF_ERROR(check_spec(e.codec));
  const int64_t n = checked_count(e.shape);
  if (n < 0) return invalid_argument("tensor shape ", shape_to_string(e.shape), " is invalid");
  if (e.codec.kind == CodecKind::kImagePng) {
    int c = 0, h = 0, w = 0;
    LIBSPLIT_RETURN_IF_ERROR(image_dims(e.shape, &c, &h, &w));
    if (!e.scales.empty() || !e.zero_points.empty()) return invalid_argument("codec png takes no quantization parameters");
    std::vector<uint8_t> pixels(static_cast<size_t>(n));
    LIBSPLIT_RETURN_IF_ERROR(codec::png::decode(e.payload.data(), e.payload.size(), c, h, w, pixels.data()));
    out->shape = e.shape;
    out->data.assign(pixels.begin(), pixels.end());
    return {};
  }
  if (is_variable_length(e.codec)) {
    const size_t params = e.codec.kind == CodecKind::kSymbolRans ? 0 : 1;
    if (e.scales.size() != params || e.zero_points.size() != params)
      return invalid_argument("codec ", codec_name(e.codec), " needs ", params, " scale/zero-point pairs, got ",
                              e.scales.size(), "/", e.zero_points.size());
    if (params && !std::isfinite(e.scales[0])) return invalid_argument("quantization scale 0 is not finite");
    if (n == 0) return invalid_argument("codec ", codec_name(e.codec), " cannot carry an empty tensor");
    std::vector<uint8_t> codes;
    LIBSPLIT_RETURN_IF_ERROR(decode_codes(e, n, tables, &codes));
    out->shape = e.shape;
    out->data.resize(size_t(n));
    if (params) {
      codec::dequantize(codes.data(), size_t(n), {e.scales[0], e.zero_points[0]}, out->data.data());
    } else {
      for (int64_t i = 0; i < n; ++i) out->data[size_t(i)] = float(int(codes[size_t(i)]) - 128);
    }
    return {};
  }
  const size_t expected = payload_size(e.codec, n);
  if (e.payload.size() != expected)
    return invalid_argument("codec ", codec_name(e.codec), " with shape ", shape_to_string(e.shape),
                            " needs ", expected, " payload bytes, got ", e.payload.size());
  size_t params = 0;
  if (e.codec.kind == CodecKind::kQuantPerTensor) params = 1;
  if (e.codec.kind == CodecKind::kQuantPerChannel) {
    if (e.shape.size() < 2 || e.shape[1] == 0)
      return invalid_argument("per-channel codec needs a shape [N, C, ...] with C > 0, got ",
                              shape_to_string(e.shape));
    params = size_t(e.shape[1]);
  }
  if (e.scales.size() != params || e.zero_points.size() != params)
    return invalid_argument("codec ", codec_name(e.codec), " needs ", params,
                            " scale/zero-point pairs, got ", e.scales.size(), "/",
                            e.zero_points.size());
  const uint32_t qmax = params ? (1u << e.codec.bits) - 1u : 0u;  // bits <= 8 for quantized kinds
  for (size_t i = 0; i < params; ++i) {
    if (e.zero_points[i] > qmax)
      return invalid_argument("zero point ", int(e.zero_points[i]), " is outside [0, ", qmax, "]");
    if (!std::isfinite(e.scales[i]))
      return invalid_argument("quantization scale ", i, " is not finite");
  }
  out->shape = e.shape;
  out->data.resize(size_t(n));
  float* y = out->data.data();
  const uint8_t* p = e.payload.data();
  switch (e.codec.kind) {
    case CodecKind::kFloat32:
      for (int64_t i = 0; i < n; ++i) {
        const uint32_t b = uint32_t(p[4 * i]) | uint32_t(p[4 * i + 1]) << 8 |
                           uint32_t(p[4 * i + 2]) << 16 | uint32_t(p[4 * i + 3]) << 24;
        std::memcpy(&y[i], &b, 4);
      }
      return {};
    case CodecKind::kFloat16:
      for (int64_t i = 0; i < n; ++i)
        y[i] = codec::half_to_float(uint16_t(p[2 * i] | p[2 * i + 1] << 8));
      return {};
    case CodecKind::kImageU8:
      for (int64_t i = 0; i < n; ++i) y[i] = float(p[i]);
      return {};
    case CodecKind::kQuantPerTensor:
    case CodecKind::kQuantPerChannel:
    case CodecKind::kQuantRans:
    case CodecKind::kQuantZstd:
    case CodecKind::kSymbolRans:
    case CodecKind::kImagePng:
      break;
  }
  std::vector<uint8_t> codes(static_cast<size_t>(n));
  codec::unpack(p, size_t(n), e.codec.bits, codes.data());
  if (e.codec.kind == CodecKind::kQuantPerTensor) {
    codec::dequantize(codes.data(), size_t(n), {e.scales[0], e.zero_points[0]}, y);
  } else {
    const int64_t outer = e.shape[0], channels = e.shape[1];
    const int64_t inner = outer * channels == 0 ? 0 : n / (outer * channels);
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t c = 0; c < channels; ++c) {
        const size_t off = size_t((o * channels + c) * inner);
        codec::dequantize(&codes[off], size_t(inner), {e.scales[size_t(c)], e.zero_points[size_t(c)]},
                          &y[off]);
      }
  }
  return {};
}

}  // namespace libsplit
