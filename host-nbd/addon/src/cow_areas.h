// A persistent snapshot's metadata areas while the receive threads do its first writes
// (thread_copies.h): Linux's dm-snap-persistent format, as core-as/snapshot/persistent-store.ts
// keeps it, written here by the threads instead of the core.
//
// Layout (chunk = the snapshot's chunk size): chunk 0 the header; metadata area i at chunk
// 1 + (per_area + 1) * i, each followed by its per_area data chunks; an area is per_area
// little-endian {u64 old_chunk, u64 new_chunk} entries, the table ending at the first new_chunk 0.
//
// The threads add each finished copy's entry to the current area in memory (Add, in the order the
// event loop folds them into the core, so the core's mirror of the area is the same bytes); when
// an area fills, the next one becomes current. Before a write that needed a copy may go to the
// origin, its entry must be on disk, as Linux's commit rule has it: CommitThrough writes what was
// added so far, in Linux's order: for each area that filled, the next area zeroed; a flush (the
// copied chunks are stable before an area points at them); the areas written; a flush (the FUA).
// One commit covers every entry added before it began, from any thread (a group commit): a thread
// whose entries an earlier commit covered does not write again. A failed write or flush makes the
// store failed for good: nothing more is written (Linux stops writing an invalid store's areas),
// and the event loop is told so that the core invalidates the snapshot.
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

namespace dmkit {

class CowAreas {
 public:
  // bytes: the current area as the core has it (chunk_bytes), holding `committed` entries.
  CowAreas(int cow_fd, uint64_t chunk_bytes, uint64_t per_area, uint64_t area, uint64_t committed, std::vector<uint8_t> bytes);

  uint64_t per_area() const { return per_area_; }
  // Adds {old_chunk, cow_chunk} to the current area: its sequence number for CommitThrough.
  uint64_t Add(uint64_t old_chunk, uint64_t cow_chunk);
  // Every entry up to seq is on disk (true), or a write failed, now or before (false).
  bool CommitThrough(uint64_t seq);
  // Whether a failure happened that the event loop has not been told of (told from now on).
  bool TakeFailure();
  bool failed();

 private:
  struct Area {
    uint64_t index = 0;
    std::vector<uint8_t> bytes;
  };
  uint64_t Location(uint64_t area) const { return (1 + (per_area_ + 1) * area) * chunk_bytes_; }
  bool Write(const std::vector<uint8_t>& bytes, uint64_t area);

  const int cow_fd_;  // ThreadCopies' (it closes it)
  const uint64_t chunk_bytes_;
  const uint64_t per_area_;
  const std::vector<uint8_t> zeroes_;
  std::mutex commit_mu_;  // one commit at a time, taken before mu_
  std::mutex mu_;
  Area current_;
  uint64_t entries_;           // in the current area
  std::vector<Area> filled_;   // areas filled since the last commit began, in order
  uint64_t added_ = 0;         // sequence numbers given out
  uint64_t committed_ = 0;     // every entry up to this one is on disk
  bool failed_ = false;
  bool failure_told_ = false;
};

}  // namespace dmkit
