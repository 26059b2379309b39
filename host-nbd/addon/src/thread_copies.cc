#include "thread_copies.h"

#include <unistd.h>

#include <cstdlib>

#include <algorithm>

namespace dmkit {

ThreadCopies::ThreadCopies(int cow_fd, uint64_t chunk_bytes, uint64_t device_bytes, uint64_t origin_bytes, uint64_t first,
                           uint64_t count)
    : cow_fd_(cow_fd), chunk_bytes_(chunk_bytes), chunks_(chunk_bytes ? (device_bytes + chunk_bytes - 1) / chunk_bytes : 0),
      origin_bytes_(origin_bytes), next_(first), end_(first + count) {
  // All-zero bytes are clear claims; a large origin's untouched chunks cost no memory.
  claims_ = static_cast<std::atomic<uint64_t>*>(calloc(std::max<uint64_t>(1, (chunks_ + 63) / 64), sizeof(uint64_t)));
}

ThreadCopies::~ThreadCopies() {
  free(claims_);
  close(cow_fd_);
}

bool ThreadCopies::Claim(uint64_t c) {
  if (c >= chunks_) return false;
  uint64_t bit = uint64_t(1) << (c % 64);
  return !(claims_[c / 64].fetch_or(bit, std::memory_order_acq_rel) & bit);
}

void ThreadCopies::Unclaim(uint64_t c) {
  if (c < chunks_) claims_[c / 64].fetch_and(~(uint64_t(1) << (c % 64)), std::memory_order_acq_rel);
}

void ThreadCopies::Claimed(uint64_t c) {
  if (c < chunks_) claims_[c / 64].fetch_or(uint64_t(1) << (c % 64), std::memory_order_release);
}

bool ThreadCopies::Take(uint64_t n, uint64_t* first) {
  std::lock_guard<std::mutex> lock(mu_);
  if (end_ - next_ < n) return false;
  *first = next_;
  next_ += n;
  return true;
}

void ThreadCopies::Log(uint64_t old_chunk, uint64_t cow_chunk) {
  std::lock_guard<std::mutex> lock(mu_);
  log_.push_back(old_chunk);
  log_.push_back(cow_chunk);
}

void ThreadCopies::Lend(uint64_t count) {
  std::lock_guard<std::mutex> lock(mu_);
  end_ += count;
}

std::vector<uint64_t> ThreadCopies::Drain() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<uint64_t> out;
  out.swap(log_);
  return out;
}

void ThreadCopies::Unused(uint64_t* next, uint64_t* end) {
  std::lock_guard<std::mutex> lock(mu_);
  *next = next_;
  *end = end_;
}

}  // namespace dmkit
