#include "chunk_marks.h"

#include <cstdlib>

#include <algorithm>

namespace dmkit {

ChunkMarks::ChunkMarks(uint64_t chunk_bytes, uint64_t device_bytes)
    : chunk_bytes_(chunk_bytes), chunks_(chunk_bytes ? (device_bytes + chunk_bytes - 1) / chunk_bytes : 0) {
  // All-zero bytes are cleared atomics (lock-free 64-bit atomics are plain words here).
  static_assert(std::atomic<uint64_t>::is_always_lock_free, "chunk marks need lock-free 64-bit atomics");
  words_ = static_cast<std::atomic<uint64_t>*>(calloc(std::max<uint64_t>(1, (chunks_ + 63) / 64), sizeof(uint64_t)));
}

ChunkMarks::~ChunkMarks() { free(words_); }

void ChunkMarks::Mark(uint64_t first, uint64_t count) const {
  uint64_t end = first + count;
  if (end > chunks_ || end < first) end = chunks_;
  for (uint64_t c = first; c < end; c++) words_[c / 64].fetch_or(uint64_t(1) << (c % 64), std::memory_order_release);
}

bool ChunkMarks::AllMarked(uint64_t off, uint64_t len) const {
  uint64_t first = off / chunk_bytes_, last = (off + len - 1) / chunk_bytes_;
  if (last >= chunks_) return false;
  for (uint64_t c = first; c <= last; c++) {
    if (!(words_[c / 64].load(std::memory_order_acquire) & (uint64_t(1) << (c % 64)))) return false;
  }
  return true;
}

bool ChunkMarks::TryMark(uint64_t c) const {
  if (c >= chunks_) return false;
  uint64_t bit = uint64_t(1) << (c % 64);
  return !(words_[c / 64].fetch_or(bit, std::memory_order_acq_rel) & bit);
}

void ChunkMarks::Clear(uint64_t c) const {
  if (c < chunks_) words_[c / 64].fetch_and(~(uint64_t(1) << (c % 64)), std::memory_order_acq_rel);
}

}  // namespace dmkit
