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
  void Add() { done.fetch_add(1); }
  uint64_t Count() const { return done.load(); }
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
    files[key] = w;
  }
  return w;
}

}  // namespace dmkit
