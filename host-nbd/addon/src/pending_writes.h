// The WRITEs (and TRIMs and WRITE_ZEROES) a receive thread handed to the event loop that are not
// answered yet, by cookie and byte range. A later WRITE the thread could do itself goes to the event loop too only if it
// overlaps one of them: a connection's writes to the same bytes never overtake one another
// across the two paths, and writes elsewhere need not wait (the spec lets a server process
// commands in any order). The receive thread adds; the event loop removes as it answers.
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

namespace dmkit {

class PendingWrites {
 public:
  void Add(uint64_t cookie, uint64_t off, uint32_t len) {
    std::lock_guard<std::mutex> lock(mu_);
    list_.push_back(Entry{cookie, off, uint64_t(len)});
  }

  // The event loop answered the write with this cookie (one of them, if a client reused it).
  void Answered(uint64_t cookie) {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < list_.size(); i++) {
      if (list_[i].cookie != cookie) continue;
      list_[i] = list_.back();
      list_.pop_back();
      return;
    }
  }

  // Whether [off, off + len) meets a pending write; always so past kMaxTracked of them (a client
  // with that many writes held up in the event loop gains nothing from a scan of them all).
  bool Overlaps(uint64_t off, uint32_t len) {
    std::lock_guard<std::mutex> lock(mu_);
    if (list_.size() > kMaxTracked) return true;
    for (const Entry& e : list_) {
      if (off < e.off + e.len && e.off < off + len) return true;
    }
    return false;
  }

 private:
  static constexpr size_t kMaxTracked = 256;
  struct Entry {
    uint64_t cookie;
    uint64_t off;
    uint64_t len;
  };
  std::mutex mu_;
  std::vector<Entry> list_;
};

}  // namespace dmkit
