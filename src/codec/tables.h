// What an EntropyTables holds: the rANS tables of a split and their version.
#pragma once

#include <vector>

#include "codec/rans.h"
#include "libsplit/codec.h"

namespace libsplit {

struct EntropyTables::Impl {
  uint32_t version = 0;
  std::vector<codec::rans::Table> tables;
  std::vector<const codec::rans::Table*> pointers;  // what rans::Coder takes
};

}  // namespace libsplit
