#include "cow_areas.h"

#include <unistd.h>

#include <utility>

#include "piece_io.h"

namespace dmkit {

namespace {

void PutLe64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = uint8_t(v >> (8 * i));
}

}  // namespace

CowAreas::CowAreas(int cow_fd, uint64_t chunk_bytes, uint64_t per_area, uint64_t area, uint64_t committed,
                   std::vector<uint8_t> bytes)
    : cow_fd_(cow_fd), chunk_bytes_(chunk_bytes), per_area_(per_area), zeroes_(chunk_bytes, 0), entries_(committed) {
  current_.index = area;
  current_.bytes = std::move(bytes);
  current_.bytes.resize(chunk_bytes, 0);
}

uint64_t CowAreas::Add(uint64_t old_chunk, uint64_t cow_chunk) {
  std::lock_guard<std::mutex> lock(mu_);
  uint8_t* at = current_.bytes.data() + entries_ * 16;
  PutLe64(at, old_chunk);
  PutLe64(at + 8, cow_chunk);
  if (++entries_ == per_area_) {
    // Full: written as it is by the next commit, after the area that follows it is zeroed.
    Area next;
    next.index = current_.index + 1;
    next.bytes.assign(chunk_bytes_, 0);
    filled_.push_back(std::move(current_));
    current_ = std::move(next);
    entries_ = 0;
  }
  return ++added_;
}

bool CowAreas::Write(const std::vector<uint8_t>& bytes, uint64_t area) {
  return PwriteAll(cow_fd_, bytes.data(), bytes.size(), Location(area)) == 0;
}

bool CowAreas::CommitThrough(uint64_t seq) {
  std::lock_guard<std::mutex> commit(commit_mu_);
  std::vector<Area> filled;
  Area current;
  bool write_current;
  uint64_t through;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (committed_ >= seq || failed_) return !failed_;
    filled.swap(filled_);
    write_current = entries_ > 0;
    if (write_current) current = current_;
    through = added_;
  }
  bool ok = true;
  for (const Area& a : filled) ok = ok && Write(zeroes_, a.index + 1);
  ok = ok && fdatasync(cow_fd_) == 0;
  for (const Area& a : filled) ok = ok && Write(a.bytes, a.index);
  if (write_current) ok = ok && Write(current.bytes, current.index);
  ok = ok && fdatasync(cow_fd_) == 0;
  std::lock_guard<std::mutex> lock(mu_);
  if (!ok) failed_ = true;
  committed_ = through;
  return ok;
}

bool CowAreas::TakeFailure() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!failed_ || failure_told_) return false;
  failure_told_ = true;
  return true;
}

bool CowAreas::failed() {
  std::lock_guard<std::mutex> lock(mu_);
  return failed_;
}

}  // namespace dmkit
