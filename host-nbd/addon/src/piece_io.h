// A receive thread's file I/O for one request, in the pieces the map cut it into (write_map.h):
// one for a linear segment or inside one chunk, one per chunk across chunks of a striped one.
// Each piece is its own pread / pwrite at its place in the request's buffer: a striped segment's
// neighbouring chunks are on different files.
#pragma once

#include <errno.h>
#include <unistd.h>

#include <cstdint>
#include <vector>

#include "receiver.h"
#include "write_map.h"

namespace dmkit {

// pwrite until all of it is written: 0, or the errno.
inline int32_t PwriteAll(int fd, const uint8_t* p, size_t n, uint64_t pos) {
  while (n > 0) {
    ssize_t w = pwrite(fd, p, n, off_t(pos));
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (w == 0) return EIO;  // a regular file never takes nothing for good
    p += w;
    n -= size_t(w);
    pos += uint64_t(w);
  }
  return 0;
}

// pread all of it: 0, or the errno (EIO when the file ends first).
inline int32_t PreadAll(int fd, uint8_t* p, size_t n, uint64_t pos) {
  while (n > 0) {
    ssize_t r = pread(fd, p, n, off_t(pos));
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (r == 0) return EIO;
    p += r;
    n -= size_t(r);
    pos += uint64_t(r);
  }
  return 0;
}

// Reads every piece into its place in data: 0, or the first errno.
inline int32_t PreadPieces(const std::vector<FilePiece>& pieces, uint8_t* data) {
  for (const FilePiece& p : pieces) {
    if (int32_t err = PreadAll(p.fd, data + p.at, p.len, p.pos)) return err;
  }
  return 0;
}

// Writes every piece from its place in payload, in order: 0, or the errno of the first that
// failed (the request's; the pieces after it are not tried, as the request fails anyway). A
// request in several pieces lists each one tried in io->pieces, so that the event loop's
// bookkeeping (flush, allocation) covers every file written.
inline int32_t PwritePieces(const std::vector<FilePiece>& pieces, const uint8_t* payload, ThreadIo* io) {
  if (pieces.size() == 1) return PwriteAll(pieces[0].fd, payload, pieces[0].len, pieces[0].pos);
  io->pieces.reserve(pieces.size());
  for (const FilePiece& p : pieces) {
    int32_t err = PwriteAll(p.fd, payload + p.at, p.len, p.pos);
    io->pieces.push_back(PieceWritten{p.tag, p.pos, p.len, err});
    if (err) return err;
  }
  return 0;
}

}  // namespace dmkit
