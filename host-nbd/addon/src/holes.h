// Holes in image files, which Node has no API for: where data and holes are (lseek SEEK_DATA /
// SEEK_HOLE), and punching a hole (fallocate), so that block status can tell a sparse image's
// holes from its data, and discard and write-zeroes cost the data they meet, not the range.
#pragma once

#include <cstdint>

#include "status.h"

namespace dmkit {

// The first offset at or after `from` that holds data, or -1 when none does before the end.
Status NextData(int fd, uint64_t from, int64_t* at);
// The first offset at or after `from` that is a hole (the end of the file counts as one).
Status NextHole(int fd, uint64_t from, int64_t* at);
// Deallocates [offset, offset + length): it reads as zeroes, the file keeps its size.
Status PunchHole(int fd, uint64_t offset, uint64_t length);

}  // namespace dmkit
