#include "parked_writes.h"

#include <algorithm>
#include <utility>

namespace dmkit {

bool ParkedWrites::Copied(uint64_t chunk) const { return std::binary_search(chunks_.begin(), chunks_.end(), chunk); }

bool ParkedWrites::Overlaps(uint64_t off, uint32_t len) const {
  for (const ParkedWrite& w : writes_) {
    if (w.off < off + len && off < w.off + w.len) return true;
  }
  return false;
}

void ParkedWrites::Park(ParkedWrite w, std::shared_ptr<ThreadCopies> copies, uint64_t seq, int64_t now_us) {
  if (writes_.empty()) since_us_ = now_us;
  chunks_.insert(chunks_.end(), w.copied.begin(), w.copied.end());
  std::sort(chunks_.begin(), chunks_.end());
  writes_.push_back(std::move(w));
  copies_ = std::move(copies);
  seq_ = std::max(seq_, seq);
}

int64_t ParkedWrites::WaitFor(int64_t now_us) const {
  if (writes_.empty() || writes_.size() >= std::min(recent_, kMax)) return 0;
  int64_t left = kWaitMaxUs - (now_us - since_us_);
  return left <= 0 ? 0 : std::min(kWaitUs, left);
}

void ParkedWrites::Finish(const std::function<void(ParkedWrite&)>& done) {
  if (writes_.empty()) return;
  copies_->Commit(seq_);
  recent_ = std::max(writes_.size(), recent_ > 0 ? recent_ - 1 : 0);
  for (ParkedWrite& w : writes_) {
    done(w);
    w.target.hold.reset();
  }
  writes_.clear();
  chunks_.clear();
  copies_.reset();
  seq_ = 0;
}

}  // namespace dmkit
