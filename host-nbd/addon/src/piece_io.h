// A receive thread's file I/O for one request, in the pieces the map cut it into (write_map.h):
// one for a linear segment or inside one chunk, one per chunk across chunks of a striped one.
// Neighbouring chunks are on different files, but one stripe's chunks in consecutive rows follow
// one another in its file: those pieces are one run, read or written with one preadv / pwritev
// from their places in the request's buffer.
#pragma once

#include <errno.h>
#include <limits.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstdint>
#include <vector>

#include "piece_run.h"
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

// Groups pieces into runs: each piece joins the first run of its descriptor (each stripe has its
// own, write_map.h) that ends where it starts.
// `base` is the request's buffer (const for a write; preadv fills it for a read). Returns how many
// of *runs are this request's; the ones after them are kept for their room.
inline size_t RunsOf(const std::vector<FilePiece>& pieces, uint8_t* base, std::vector<PieceRun>* runs) {
  size_t used = 0;
  for (const FilePiece& p : pieces) {
    PieceRun* run = nullptr;
    for (size_t i = 0; i < used; i++) {
      PieceRun& r = (*runs)[i];
      if (r.fd == p.fd && r.pos + r.len == p.pos && r.iov.size() < IOV_MAX) { run = &r; break; }
    }
    if (!run) {
      if (used == runs->size()) runs->emplace_back();
      run = &(*runs)[used++];
      run->fd = p.fd;
      run->writes = p.writes;
      run->tag = p.tag;
      run->pos = p.pos;
      run->len = 0;
      run->iov.clear();
    }
    run->iov.push_back(iovec{base + p.at, p.len});
    run->len += p.len;
  }
  return used;
}

// preadv or pwritev of a whole run, again after a short transfer: 0, or the errno (EIO when a
// read meets the end of the file, or a write takes nothing).
inline int32_t TransferRun(PieceRun& r, bool write) {
  iovec* iov = r.iov.data();
  int left = int(r.iov.size());
  uint64_t pos = r.pos;
  while (left > 0) {
    ssize_t n = write ? pwritev(r.fd, iov, left, off_t(pos)) : preadv(r.fd, iov, left, off_t(pos));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;
    pos += uint64_t(n);
    for (size_t done = size_t(n); done > 0;) {  // skip what was transferred
      size_t step = done < iov->iov_len ? done : iov->iov_len;
      iov->iov_base = static_cast<uint8_t*>(iov->iov_base) + step;
      iov->iov_len -= step;
      done -= step;
      if (iov->iov_len == 0) { iov++; left--; }
    }
  }
  return 0;
}

// Reads every piece into its place in data: 0, or the first errno.
inline int32_t PreadPieces(const std::vector<FilePiece>& pieces, uint8_t* data, std::vector<PieceRun>* runs) {
  if (pieces.size() == 1) return PreadAll(pieces[0].fd, data, pieces[0].len, pieces[0].pos);
  size_t n = RunsOf(pieces, data, runs);
  for (size_t i = 0; i < n; i++) {
    if (int32_t err = TransferRun((*runs)[i], false)) return err;
  }
  return 0;
}

// Writes every piece from its place in payload, a run at a time, each in its file's write turn
// (file_writes.h): 0, or the errno of the first
// run that failed (the request's; the runs after it are not tried, as the request fails anyway).
// A request in several pieces lists each run tried in io->pieces, so that the event loop's
// bookkeeping (flush, allocation) covers every file written.
inline int32_t PwritePieces(const std::vector<FilePiece>& pieces, const uint8_t* payload, ThreadIo* io,
                            std::vector<PieceRun>* runs) {
  if (pieces.size() == 1) {
    WriteTurn turn(pieces[0].writes);
    return PwriteAll(pieces[0].fd, payload, pieces[0].len, pieces[0].pos);
  }
  size_t n = RunsOf(pieces, const_cast<uint8_t*>(payload), runs);  // pwritev only reads through the iovecs
  io->pieces.reserve(n);
  for (size_t i = 0; i < n; i++) {
    PieceRun& r = (*runs)[i];
    int32_t err;
    {
      WriteTurn turn(r.writes);
      err = TransferRun(r, true);
    }
    io->pieces.push_back(PieceWritten{r.tag, r.pos, uint32_t(r.len), err});
    if (err) return err;
  }
  return 0;
}

}  // namespace dmkit
