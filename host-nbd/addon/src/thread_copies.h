// First writes to an origin chunk done by the receive threads (core-as/snapshot/thread-copies.ts):
// while the event loop lends them COW chunks of the origin's one transient snapshot, a thread
// that gets a WRITE over chunks the snapshot has not copied claims those chunks, copies each into
// the next lent COW chunk (pread of the origin, pwrite to the COW file), logs the exception, marks
// the chunk copied (write_map.h ChunkMarks) and then writes the origin itself. The event loop
// drains the log into the core (fold) as the threads' requests are accounted for, lends more
// chunks as they run low, and takes the copies away (WriteMap::DisableCopies, then waiting for the
// threads' requests) before it sends the core anything that could copy a chunk or read one
// through the snapshot.
//
// Claims: one bit per chunk, set by the thread that copies it, or at start for every chunk the
// snapshot already holds, and never cleared but by the thread that set it and then failed: two
// writes to one chunk never both copy it.
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

#include "chunk_marks.h"

namespace dmkit {

class ThreadCopies {
 public:
  // cow_fd: a duplicate this owns. Claims for the chunks of device_bytes; a copy reads the origin
  // file up to origin_bytes (a last chunk cut there, as the core's copy is). Lent COW chunks [first, first + count).
  ThreadCopies(int cow_fd, uint64_t chunk_bytes, uint64_t device_bytes, uint64_t origin_bytes, uint64_t first, uint64_t count);
  ~ThreadCopies();
  ThreadCopies(const ThreadCopies&) = delete;
  ThreadCopies& operator=(const ThreadCopies&) = delete;

  bool ok() const { return claims_.ok(); }
  int cow_fd() const { return cow_fd_; }
  uint64_t chunk_bytes() const { return claims_.chunk_bytes(); }
  uint64_t chunks() const { return claims_.chunks(); }
  // How many bytes of origin chunk c a copy reads and writes (0: none, past the origin).
  uint64_t CopyBytes(uint64_t c) const {
    uint64_t chunk = claims_.chunk_bytes(), at = c * chunk;
    return at >= origin_bytes_ ? 0 : (origin_bytes_ - at < chunk ? origin_bytes_ - at : chunk);
  }

  // Thread: claims chunk c for copying (false: claimed before); gives a claim back after a failure.
  bool Claim(uint64_t c) { return claims_.TryMark(c); }
  void Unclaim(uint64_t c) { claims_.Clear(c); }
  // Thread: the next n lent chunks, in order (false: fewer are left; none taken).
  bool Take(uint64_t n, uint64_t* first);
  // Thread: origin chunk `old_chunk` is copied into COW chunk `cow_chunk` (kWasted: a taken chunk
  // that holds no copy, its copy failed).
  void Log(uint64_t old_chunk, uint64_t cow_chunk);
  static constexpr uint64_t kWasted = UINT64_MAX;

  // Event loop: chunk c is held by the snapshot already (set before the threads see this).
  void Claimed(uint64_t c) { claims_.Mark(c, 1); }
  // Event loop: more chunks lent, following the ones before.
  void Lend(uint64_t count);
  // Event loop: the log so far, [old, cow] pairs in order, emptied.
  std::vector<uint64_t> Drain();
  // Event loop: lent chunks not taken, [next, end).
  void Unused(uint64_t* next, uint64_t* end);

 private:
  const int cow_fd_;
  const uint64_t origin_bytes_;
  const ChunkMarks claims_;
  std::mutex mu_;
  uint64_t next_;
  uint64_t end_;
  std::vector<uint64_t> log_;
};

}  // namespace dmkit
