// IEEE 754 binary16 conversion in integer arithmetic (identical on every CPU).
#pragma once
#include <cstdint>

namespace libsplit::codec {
uint16_t float_to_half(float f);  // round to nearest even; overflow -> inf; NaN stays NaN
float half_to_float(uint16_t h);
}  // namespace libsplit::codec
