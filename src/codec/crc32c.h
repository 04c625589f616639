// CRC-32C (Castagnoli), as used by iSCSI, ext4 and gRPC. Check value: crc32c("123456789") = 0xE3069283.
#pragma once
#include <cstddef>
#include <cstdint>

namespace libsplit::codec {
// Extends `crc` (0 for a fresh checksum) over `n` bytes.
uint32_t crc32c(const uint8_t* data, size_t n, uint32_t crc = 0);
}  // namespace libsplit::codec
