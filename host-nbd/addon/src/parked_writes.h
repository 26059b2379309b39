// A receive thread's first writes to an origin with a persistent snapshot, waiting for their
// exceptions' commit (thread_copies.h, cow_areas.h) before they may go to the origin.
//
// Why together: a commit is two fdatasyncs of the COW file whatever it holds, so the thread
// parks the writes it parses and commits once for all of them before it would wait for the
// socket (receiver.h). A client with many writes in flight sends the next ones just after it
// reads the replies, so while fewer are parked than recent commits held, the thread may wait a
// little for them (WaitFor); a client with one write at a time never waits.
//
// The owner finishes them (Finish) before anything that must not overtake them: a write over
// their bytes, bytes of the stream handed to the event loop, a pause, the thread's end.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "thread_copies.h"
#include "write_map.h"

namespace dmkit {

struct ParkedWrite {
  uint8_t header[28];
  uint64_t off = 0;
  uint32_t len = 0;
  std::vector<uint8_t> payload;
  WriteTarget target;
  std::vector<uint64_t> copied;  // the chunks it copied: marked copied once committed
  uint64_t chunk_bytes = 0;      // the snapshot's chunk
};

class ParkedWrites {
 public:
  bool empty() const { return writes_.empty(); }
  size_t size() const { return writes_.size(); }
  // Whether a parked write copied this chunk (a later write over it parks behind it, uncopied).
  bool Copied(uint64_t chunk) const;
  // Whether a parked write touches these bytes.
  bool Overlaps(uint64_t off, uint32_t len) const;
  // Whether a write copied with these copies may join the parked ones (none, or the same copies).
  bool Joins(const std::shared_ptr<ThreadCopies>& copies) const { return writes_.empty() || copies_ == copies; }
  // Adds one whose copies' last exception is seq (0: it copied nothing); now_us: the clock.
  void Park(ParkedWrite w, std::shared_ptr<ThreadCopies> copies, uint64_t seq, int64_t now_us);
  // How long to wait for the client's next requests before the commit (0: commit now).
  int64_t WaitFor(int64_t now_us) const;
  // Whether no more may join before the commit.
  bool Full() const { return writes_.size() >= kMax; }
  // Their exceptions committed with one commit, then each handed to done in the order parked.
  // A failed commit fails the snapshot (the event loop learns of it from the copies' log); the
  // writes go on, as Linux lets origin writes go on past a snapshot it invalidated.
  void Finish(const std::function<void(ParkedWrite&)>& done);

 private:
  static constexpr size_t kMax = 64;        // parked writes at most (their payloads are copies)
  static constexpr int64_t kWaitUs = 50;    // for the client's next request
  static constexpr int64_t kWaitMaxUs = 300;  // for all of them, from the first parked

  std::vector<ParkedWrite> writes_;
  std::vector<uint64_t> chunks_;  // every chunk they copied, sorted
  std::shared_ptr<ThreadCopies> copies_;
  uint64_t seq_ = 0;          // the last exception they need committed
  int64_t since_us_ = 0;      // when the first was parked
  size_t recent_ = 0;         // how many recent commits held (forgets slowly)
};

}  // namespace dmkit
