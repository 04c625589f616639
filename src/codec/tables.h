// What an EntropyTables holds: the rANS tables of a split and their version.
#pragma once

#include <mutex>
#include <vector>

#include "codec/context.h"
#include "codec/predict.h"
#include "codec/rans.h"
#include "libsplit/codec.h"

namespace libsplit {

struct EntropyTables::Impl {
  uint32_t version = 0;
  // The decoders' lookups (9 KiB a table) are built on the first decode only, so a device
  // that only encodes never holds them.
  mutable std::vector<codec::rans::Table> tables;
  mutable std::once_flag decoders_built;
  std::vector<const codec::rans::Table*> pointers;  // what rans::Coder takes
  codec::Predictor predictor;  // format 2 only; empty: the tables code the codes themselves
  codec::ContextModel context;  // format 3 only: predicts and picks each element's table

  void ensure_decoders() const {
    std::call_once(decoders_built, [this] {
      for (auto& t : tables) t.build_decoder();
    });
  }
};

}  // namespace libsplit
