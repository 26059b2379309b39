// A thread of its own that writes one backing file, for the server's large writes.
//
// Why not libuv's pool: with four pool threads and one write at a time, every write wakes a
// sleeping thread (a futex wake, a context switch, a cache-cold copy on another core), and the
// threads then contend for the file's inode lock, which serializes buffered writes to one file
// anyway. A lane that stays with its file takes the next write without sleeping while writes keep
// coming, and reports finished writes in batches: the event loop is woken once per batch, not
// once per write (docs/performance.md, "Large writes on a thread per image file").
#pragma once

#include <sys/uio.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace dmkit {

struct LaneWrite {
  uint64_t id = 0;
  std::vector<iovec> iov;  // memory the caller keeps alive until the write is reported
  uint64_t pos = 0;
};

struct LaneResult {
  uint64_t id = 0;
  int64_t result = 0;  // bytes written (all of them), or -errno
};

class WriteLane {
 public:
  // Writes go to fd, which the caller keeps open until the lane has stopped. `ready` runs on the
  // lane's thread when results wait after none did: the owner then calls TakeResults.
  WriteLane(int fd, std::function<void()> ready);
  // Finishes the writes already pushed, then stops the thread (idempotent; their results stay
  // for TakeResults).
  void Stop();
  ~WriteLane();
  WriteLane(const WriteLane&) = delete;
  WriteLane& operator=(const WriteLane&) = delete;

  void Push(LaneWrite w);
  void TakeResults(std::vector<LaneResult>* out);

 private:
  void Run();

  const int fd_;
  const std::function<void()> ready_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<LaneWrite> todo_;
  std::vector<LaneResult> done_;
  bool stopping_ = false;
  bool stopped_ = false;  // Stop() ran (the owning thread only)
  std::thread thread_;
};

// pwritev until every byte of iov is written at pos: bytes written, or -errno.
int64_t WriteAll(int fd, std::vector<iovec> iov, uint64_t pos);

}  // namespace dmkit
