// Origin chunks that reads of the origin's snapshot are reading through the core while the receive
// threads copy first writes (thread_copies.h): a thread that copied a chunk waits for them before
// it writes the origin over it (dm-snap's track_chunk and __check_for_conflicting_io).
//
// Why: the core maps a snapshot read of a chunk it has no exception for onto the origin. While the
// threads copy, the core learns of their copies only when the event loop folds their log. So the
// event loop, for each snapshot read, first counts the read's chunks here, then folds the log,
// and only then hands the read to the core; a thread logs a copy, then looks here, then writes the
// origin. Either the fold finds the copy (the core reads the COW chunk) or the thread finds the
// read (and waits until it is done): the log's lock orders the two.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <unordered_map>

namespace dmkit {

class SnapshotReads {
 public:
  // Event loop: a read of chunks [first, first + count) starts (on) or has ended (off).
  void Count(uint64_t first, uint64_t count, bool on) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (uint64_t c = first; c < first + count; c++) {
        if (on) {
          chunks_[c]++;
        } else {
          auto it = chunks_.find(c);
          if (it == chunks_.end()) continue;  // never counted: nothing to end
          if (--it->second == 0) chunks_.erase(it);
        }
      }
      any_.store(!chunks_.empty());
    }
    if (!on) ended_.notify_all();
  }

  // Thread: waits until no read counts a chunk under device bytes [off, off + len): true; false
  // when `stop` was set meanwhile (Wake): the event loop may be waiting for this thread then, so
  // the write must not be done (its old bytes may still be read for the snapshot).
  bool WaitOver(uint64_t off, uint64_t len, uint64_t chunk_bytes, const std::atomic<bool>& stop) {
    if (!any_.load() || len == 0 || chunk_bytes == 0) return true;
    std::unique_lock<std::mutex> lock(mu_);
    ended_.wait(lock, [&] {
      if (stop.load()) return true;
      for (uint64_t c = off / chunk_bytes; c <= (off + len - 1) / chunk_bytes; c++) {
        if (chunks_.count(c)) return false;
      }
      return true;
    });
    return !stop.load();
  }

  // Wakes the waiting threads to look at their stop flags again.
  void Wake() {
    std::lock_guard<std::mutex> lock(mu_);
    ended_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable ended_;
  std::unordered_map<uint64_t, uint32_t> chunks_;  // reads counting each chunk
  std::atomic<bool> any_{false};
};

}  // namespace dmkit
