#include "thread_copies.h"

#include <unistd.h>

#include <utility>

namespace dmkit {

ThreadCopies::ThreadCopies(int cow_fd, std::shared_ptr<const ChunkMarks> claims, uint64_t origin_bytes, uint64_t first,
                           uint64_t count)
    : cow_fd_(cow_fd), origin_bytes_(origin_bytes), claims_(std::move(claims)), next_(first), end_(first + count) {}

void ThreadCopies::Persist(uint64_t per_area, uint64_t area, uint64_t committed, std::vector<uint8_t> bytes) {
  uint64_t next = ChunkAt(next_);  // still chunk numbers: counted as indexes from now on
  areas_ = std::make_unique<CowAreas>(cow_fd_, claims_->chunk_bytes(), per_area, area, committed, std::move(bytes));
  uint64_t count = end_ - next_;
  next_ = IndexOf(next);
  end_ = next_ + count;
}

// Data chunks start at chunk 2 (after the header and area 0); each area's chunk is skipped.
uint64_t ThreadCopies::ChunkAt(uint64_t index) const {
  if (!areas_) return index;
  uint64_t per = areas_->per_area();
  return 2 + (index / per) * (per + 1) + index % per;
}

uint64_t ThreadCopies::IndexOf(uint64_t chunk) const {
  if (!areas_) return chunk;
  uint64_t per = areas_->per_area(), rel = chunk - 2;
  return (rel / (per + 1)) * per + rel % (per + 1);
}

ThreadCopies::~ThreadCopies() { close(cow_fd_); }

bool ThreadCopies::Take(uint64_t n, uint64_t* first) {
  std::lock_guard<std::mutex> lock(mu_);
  if (end_ - next_ < n || (areas_ && areas_->failed())) return false;
  *first = next_;
  next_ += n;
  return true;
}

uint64_t ThreadCopies::Log(uint64_t old_chunk, uint64_t cow_chunk) {
  std::lock_guard<std::mutex> lock(mu_);  // the log and the areas in one order
  log_.push_back(old_chunk);
  log_.push_back(cow_chunk);
  return areas_ && old_chunk != kWasted ? areas_->Add(old_chunk, cow_chunk) : 0;
}

bool ThreadCopies::Commit(uint64_t seq) {
  if (!areas_ || areas_->CommitThrough(seq)) return true;
  if (areas_->TakeFailure()) {
    std::lock_guard<std::mutex> lock(mu_);
    log_.push_back(kCommitFailed);
    log_.push_back(0);
  }
  return false;
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

void ThreadCopies::Unused(uint64_t* next, uint64_t* end, uint64_t* count) {
  std::lock_guard<std::mutex> lock(mu_);
  *next = ChunkAt(next_);
  *end = ChunkAt(end_);
  *count = end_ - next_;
}

}  // namespace dmkit
