#include "thread_copies.h"

#include <unistd.h>

namespace dmkit {

ThreadCopies::ThreadCopies(int cow_fd, uint64_t chunk_bytes, uint64_t device_bytes, uint64_t origin_bytes, uint64_t first,
                           uint64_t count)
    : cow_fd_(cow_fd), origin_bytes_(origin_bytes), claims_(chunk_bytes, device_bytes), next_(first), end_(first + count) {}

ThreadCopies::~ThreadCopies() { close(cow_fd_); }

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
