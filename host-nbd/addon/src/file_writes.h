// How many writes the connections' receive threads completed on each file, so that the event loop
// can tell whether a FLUSH has anything to make durable (host-nbd/engine/file-backing.js) without
// waiting to hear of each write: a thread answers a write before the event loop hears of it, and a
// FLUSH on another connection may come first. A thread counts a write once its pwrite returned
// (failed too: part of it may be in the page cache) and before it sends the reply, so a FLUSH sent
// after the client saw the reply finds it counted.
//
// One counter per file, whatever descriptor writes it (the write map's are duplicates): by device
// and inode, or by device number for a block device (as the engine's identityOf). The counter
// lives while a descriptor's holder (a published extent, the event loop's handle) keeps it.
//
// It also keeps the file's write turn. The kernel writes a regular file's buffered writes one at a
// time (under the inode's lock), and a writer that finds the lock taken spins while its owner
// runs. With four connections writing one image on two cores, that spinning took a tenth of the
// server's time, CPU the client needed (docs/performance.md, "One writer per file, and payloads
// spliced into it").
// A thread takes the turn before its pwrite, so that a waiter sleeps instead. A block device's
// writes run side by side in the kernel: it has no turn.
#pragma once

#include <sys/stat.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>

namespace dmkit {

struct FileWrites {
  std::atomic<uint64_t> done{0};
  bool regular = false;  // a regular file: writes take turns
  std::mutex turn;
  void Add() { done.fetch_add(1); }
  uint64_t Count() const { return done.load(); }
};

// Holds a regular file's write turn while it lives (nothing for a block device, or no counter).
class WriteTurn {
 public:
  explicit WriteTurn(FileWrites* w) : w_(w && w->regular ? w : nullptr) {
    if (w_) w_->turn.lock();
  }
  ~WriteTurn() {
    if (w_) w_->turn.unlock();
  }
  WriteTurn(const WriteTurn&) = delete;
  WriteTurn& operator=(const WriteTurn&) = delete;

 private:
  FileWrites* w_;
};

// The counter of the file fd is open on (made on first use); null if fstat fails.
inline std::shared_ptr<FileWrites> FileWritesOf(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return nullptr;
  bool block = S_ISBLK(st.st_mode);
  std::tuple<bool, uint64_t, uint64_t> key{block, block ? uint64_t(st.st_rdev) : uint64_t(st.st_dev), block ? 0 : uint64_t(st.st_ino)};
  static std::mutex mu;
  static std::map<std::tuple<bool, uint64_t, uint64_t>, std::weak_ptr<FileWrites>> files;
  std::lock_guard<std::mutex> lock(mu);
  for (auto it = files.begin(); it != files.end();) it = it->second.expired() ? files.erase(it) : std::next(it);
  std::shared_ptr<FileWrites> w = files[key].lock();
  if (!w) {
    w = std::make_shared<FileWrites>();
    w->regular = S_ISREG(st.st_mode);
    files[key] = w;
  }
  return w;
}

}  // namespace dmkit
