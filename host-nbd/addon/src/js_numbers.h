// What a JavaScript number may be when it stands for a byte count or a file position.
#pragma once

#include <cstdint>

namespace dmkit {

// A non-negative integer that a double holds exactly (up to 2^53).
inline bool IsByteCount(double d) {
  return d >= 0 && d <= 9007199254740992.0 && d == static_cast<double>(static_cast<uint64_t>(d));
}

}  // namespace dmkit
