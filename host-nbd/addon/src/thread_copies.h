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
// With a persistent snapshot (P, PO) the exceptions must also reach its metadata areas on disk
// before the writes they protect go to the origin (cow_areas.h): Log adds each to the areas, and
// a thread commits them (Commit) before it writes the origin over the chunks it copied. The lent
// chunks then step over the metadata areas' chunks, as the store's allocation does: they are
// counted as data chunk indexes (the n-th data chunk of the device), told as chunk numbers.
//
// Claims: one bit per chunk, set by the thread that copies it, or at start for every chunk the
// snapshot already holds, and never cleared but by the thread that set it and then failed: two
// writes to one chunk never both copy it. Once the copies are taken back and folded, the claims
// are exactly the snapshot's exceptions; the write map's owner keeps them (under the tag of the
// core's exception table) for the next copies, which reuse them while the tag is the same: a
// snapshot of millions of chunks is not read again each time copies are lent.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "chunk_marks.h"
#include "cow_areas.h"

namespace dmkit {

class ThreadCopies {
 public:
  // cow_fd: a duplicate this owns. claims: one per chunk of the device (new, or the claims of
  // copies before these, which this then goes on setting); a copy reads the origin file up to
  // origin_bytes (a last chunk cut there, as the core's copy is). Lent COW chunks [first, first + count).
  ThreadCopies(int cow_fd, std::shared_ptr<const ChunkMarks> claims, uint64_t origin_bytes, uint64_t first, uint64_t count);
  ~ThreadCopies();
  ThreadCopies(const ThreadCopies&) = delete;
  ThreadCopies& operator=(const ThreadCopies&) = delete;

  int cow_fd() const { return cow_fd_; }
  uint64_t chunk_bytes() const { return claims_->chunk_bytes(); }
  // The claims, to keep for the next copies while the snapshot's exceptions stay what they are.
  const std::shared_ptr<const ChunkMarks>& claims() const { return claims_; }
  // How many bytes of origin chunk c a copy reads and writes (0: none, past the origin).
  uint64_t CopyBytes(uint64_t c) const {
    uint64_t chunk = claims_->chunk_bytes(), at = c * chunk;
    return at >= origin_bytes_ ? 0 : (origin_bytes_ - at < chunk ? origin_bytes_ - at : chunk);
  }

  // Thread: claims chunk c for copying (false: claimed before); gives a claim back after a failure.
  bool Claim(uint64_t c) { return claims_->TryMark(c); }
  void Unclaim(uint64_t c) { claims_->Clear(c); }
  // Persistent: the snapshot's metadata areas from the core's current one (before any thread runs).
  void Persist(uint64_t per_area, uint64_t area, uint64_t committed, std::vector<uint8_t> bytes);
  bool persistent() const { return areas_ != nullptr; }

  // Thread: the next n lent chunks, in order (false: fewer are left, or the store failed; none
  // taken): the first one's data chunk index, each one's chunk number at ChunkAt(first + i).
  bool Take(uint64_t n, uint64_t* first);
  uint64_t ChunkAt(uint64_t index) const;
  // Thread: origin chunk `old_chunk` is copied into COW chunk `cow_chunk` (kWasted: a taken chunk
  // that holds no copy, its copy failed): the entry's sequence number for Commit (persistent).
  uint64_t Log(uint64_t old_chunk, uint64_t cow_chunk);
  // Thread, persistent: every entry logged up to seq is on disk (false: the store failed; the
  // event loop learns of it from the log).
  bool Commit(uint64_t seq);
  static constexpr uint64_t kWasted = UINT64_MAX;
  static constexpr uint64_t kCommitFailed = UINT64_MAX - 1;  // in the log only, its pair's second half 0

  // Event loop: chunk c is held by the snapshot already (set before the threads see this).
  void Claimed(uint64_t c) { claims_->Mark(c, 1); }
  // Event loop: more chunks lent, following the ones before.
  void Lend(uint64_t count);
  // Event loop: the log so far, [old, cow] pairs in order, emptied.
  std::vector<uint64_t> Drain();
  // Event loop: lent chunks not taken: the first's and the one after the last one's chunk
  // numbers, and how many.
  void Unused(uint64_t* next, uint64_t* end, uint64_t* count);

 private:
  const int cow_fd_;
  const uint64_t origin_bytes_;
  const std::shared_ptr<const ChunkMarks> claims_;
  std::mutex mu_;
  uint64_t IndexOf(uint64_t chunk) const;
  uint64_t next_;  // data chunk indexes: lent [next_, end_)
  uint64_t end_;
  std::vector<uint64_t> log_;
  std::unique_ptr<CowAreas> areas_;  // persistent only
};

}  // namespace dmkit
