// Whether n bytes are all zero: the test a structured reply's hole chunks rest on (receiver.cc,
// file_view.cc). The first byte decides most data at once; memcmp against itself shifted by one
// checks the rest without a buffer of zeroes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace dmkit {

inline bool AllZero(const uint8_t* p, size_t n) { return n == 0 || (p[0] == 0 && std::memcmp(p, p + 1, n - 1) == 0); }

}  // namespace dmkit
