// Pieces of one request that follow one another in one file (piece_io.h groups them): one
// preadv / pwritev from their places in the request's buffer. A receiver keeps its list of runs
// from request to request, so that its vectors are allocated once.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <vector>

namespace dmkit {

struct FileWrites;

struct PieceRun {
  int fd = -1;
  FileWrites* writes = nullptr;  // the file's (file_writes.h), for a write's turn
  uint32_t tag = 0;
  uint64_t pos = 0;        // file offset of the first piece
  uint64_t len = 0;        // all of them
  std::vector<iovec> iov;  // each piece's place in the request's buffer, in file order
};

}  // namespace dmkit
