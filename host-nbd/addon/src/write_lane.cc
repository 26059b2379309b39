#include "write_lane.h"

#include "thread_start.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>

namespace dmkit {

int64_t WriteAll(int fd, std::vector<iovec> iov, uint64_t pos) {
  int64_t total = 0;
  size_t first = 0;
  while (first < iov.size()) {
    int count = int(std::min<size_t>(iov.size() - first, IOV_MAX));
    ssize_t n = pwritev(fd, &iov[first], count, off_t(pos + uint64_t(total)));
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (n == 0) return -EIO;  // a regular file or block device never takes nothing for good
    total += n;
    // Skip what was written: whole vectors, then the front of a partly written one.
    size_t left = size_t(n);
    while (first < iov.size() && left >= iov[first].iov_len) left -= iov[first++].iov_len;
    if (left > 0) {
      iov[first].iov_base = static_cast<uint8_t*>(iov[first].iov_base) + left;
      iov[first].iov_len -= left;
    }
    while (first < iov.size() && iov[first].iov_len == 0) first++;
  }
  return total;
}

WriteLane::WriteLane(int fd, std::function<void()> ready) : fd_(fd), ready_(std::move(ready)) {
  thread_ = StartQuietThread("dmkit-write", [this] { Run(); });
}

void WriteLane::Stop() {
  if (stopped_) return;
  stopped_ = true;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

WriteLane::~WriteLane() { Stop(); }

void WriteLane::Push(LaneWrite w) {
  bool was_idle;
  {
    std::lock_guard<std::mutex> lock(mu_);
    was_idle = todo_.empty();
    todo_.push_back(std::move(w));
  }
  // A lane with writes queued is awake (it looks at the queue before it sleeps): no wake-up.
  if (was_idle) wake_.notify_one();
}

void WriteLane::TakeResults(std::vector<LaneResult>* out) {
  std::lock_guard<std::mutex> lock(mu_);
  out->swap(done_);
  done_.clear();
}

void WriteLane::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    wake_.wait(lock, [this] { return stopping_ || !todo_.empty(); });
    if (todo_.empty()) return;  // stopping, and nothing left
    LaneWrite w = std::move(todo_.front());
    lock.unlock();
    int64_t r = WriteAll(fd_, std::move(w.iov), w.pos);
    lock.lock();
    todo_.pop_front();
    bool first = done_.empty();
    done_.push_back({w.id, r});
    if (first) {
      lock.unlock();
      ready_();
      lock.lock();
    }
  }
}

}  // namespace dmkit
