// A thread per NBD connection that reads the socket in the transmission phase (simple request
// headers only) and does the connection's plain reads and writes itself.
//
// Why: a request that crosses from the event loop to another thread and back costs wake-ups on
// two busy cores; nbdkit's threads receive, do the I/O and reply in one place, and that is what
// made it faster on sequential writes (docs/performance.md, "A thread per connection"). Here a
// READ or WRITE with no flags and whole sectors that the device's published map (write_map.h)
// puts inside one segment onto files is done right here: a WRITE (at most 2 MiB) received whole
// into this thread's buffer and written with pwrite (or, when most of a large one is still to
// come, received whole into a pipe and spliced into the file: payload_pipe.h), each file written
// by one thread at a time (file_writes.h), a READ read or sent from the file; either
// answered from here when the socket's write side is free (shared_output.h: replies never
// interleave). A request across chunks of a striped segment is done in pieces, one per chunk, each
// on its stripe's file, a stripe's consecutive rows in one preadv / pwritev (piece_io.h); a READ
// so only through memory (up to 2 MiB).
// The event loop learns of them in batches, for its bookkeeping (and to answer a write the
// thread could not); what a FLUSH must know at once, that a file was written, is counted here
// before the reply (file_writes.h). Every other byte of the stream, requests and payloads alike, goes to the
// event loop unchanged and in order, where the server parses and checks it as if it had read it.
//
// First writes to origin chunks: while the event loop lends the threads COW chunks of an origin's
// one snapshot (thread_copies.h), a WRITE on a guarded extent over chunks not copied yet is
// done here too: each such chunk copied into a lent COW chunk first, then the write. If another
// write is copying one of its chunks, or the lent chunks run out, it goes to the event loop.
// With a persistent snapshot the exceptions must be on disk before the write (cow_areas.h): the
// write is parked, with its payload, and the thread goes on parsing; before it would wait for the
// socket (or after 64 parked writes, or before a write over a parked one's bytes) it commits
// every exception it made with one commit and then does the parked writes, in order
// (parked_writes.h). A later write over a chunk a parked write copied parks too, without a copy:
// it goes after that one.
//
// Ordering: the events (bytes to parse, requests done) reach the event loop in stream order.
// While a WRITE handed to the event loop is unanswered, later writes that overlap it are handed
// over too (pending_writes.h), so that a connection's writes to the same bytes never overtake one
// another across the two paths. Replies may come in any order (as the spec allows): a READ the
// thread answers may overtake requests before it, and a WRITE elsewhere may overtake one the
// event loop has. Stream damage (a bad magic) makes the thread hand over everything from there
// on: the event loop closes the connection.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "aligned_buffer.h"
#include "parked_writes.h"
#include "payload_pipe.h"
#include "pending_writes.h"
#include "piece_run.h"
#include "shared_output.h"
#include "write_map.h"

namespace dmkit {

struct ReceivedBytes {
  uint8_t* data = nullptr;  // malloc'd; the event loop frees it
  size_t len = 0;
};

// What a WRITE written in several pieces (across chunks of a striped segment) wrote to one file
// in one call (a run of pieces, piece_io.h), for the event loop's bookkeeping of that file.
struct PieceWritten {
  uint32_t tag = 0;
  uint64_t file_pos = 0;
  uint32_t len = 0;
  int32_t err = 0;
};

// A request the thread did: a WRITE (written, perhaps answered) or a READ (answered).
struct ThreadIo {
  bool is_read = false;
  uint32_t cookie_hi = 0, cookie_lo = 0, tag = 0;
  uint64_t file_pos = 0;  // with tag: where its (first) piece went
  uint64_t offset = 0;  // on the device, as the request said
  uint32_t len = 0;
  int32_t err = 0;       // errno of a failed pwrite, or EPIPE for a reply that broke off
  bool replied = false;  // the thread sent the reply itself
  bool mapped = false;   // a READ whose data was sent from the image's mapping (file_view.h)
  bool spliced = false;  // a WRITE whose payload went from the socket to the file through a pipe (payload_pipe.h)
  // A WRITE in several pieces: each run of them tried, in order (the first that failed is the last).
  // Empty for a WRITE in one piece: tag, file_pos and len say where it went.
  std::vector<PieceWritten> pieces;
};

struct ReceiverEvent {
  bool is_io = false;
  ReceivedBytes bytes;
  ThreadIo io;
};

struct ReceiverOptions {
  uint32_t max_request = 0;  // larger READs and WRITEs go to the event loop (it refuses them)
  bool structured = false;   // READ replies are structured (one OFFSET_DATA chunk)
  int stall_ms = 5000;       // a reply sent in part must be finished within this
};

class Receiver {
 public:
  // fd: a duplicate this owns. `initial`: bytes already read from the socket, parsed first.
  // `notify` runs on the thread when events wait after none did.
  Receiver(int fd, std::shared_ptr<WriteMap> map, ReceiverOptions opts, std::vector<uint8_t> initial,
           std::function<void()> notify);
  ~Receiver();
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;

  void Start();
  // Stops the thread (it finishes a write in progress first) and closes the descriptor.
  void Stop();
  void SetPaused(bool paused);
  // The WRITE with this cookie that was handed to the event loop was answered.
  void WriteAnswered(uint64_t cookie) { js_writes_.Answered(cookie); }
  // The socket's write side, shared with the event loop.
  SharedOutput& output() { return out_; }
  // How long a request has been arriving in part (0: none is).
  int64_t MidRequestMs() const;
  // Events so far, and why the stream ended (empty while it goes on).
  void Take(std::vector<ReceiverEvent>* out, std::string* end, bool* end_is_error);

 private:
  void Run();
  bool Parse();  // false: the stream ended inside a payload
  const uint8_t* ReceivePayload(uint32_t len);
  const uint8_t* ReceiveRest(size_t got, uint32_t len);
  struct Payload {
    const uint8_t* data = nullptr;  // in memory, or
    bool piped = false;             // in pipe_; neither: the stream ended, or the thread stops
  };
  Payload PipeOrReceivePayload(uint32_t len);
  const uint8_t* PipeToMemory(uint32_t len, size_t got);
  int32_t WritePiped(const FilePiece& p);
  void ForwardRequest(const uint8_t* header, const uint8_t* payload, uint32_t len);
  bool RecvSome(uint8_t* to, size_t max, size_t* got, bool honour_pause);
  bool WaitReadable();
  void Forward(const uint8_t* p, size_t n);
  void Push(ReceiverEvent e, bool quiet = false);
  void WakeForQuiet();
  bool ReadFast(const uint8_t* header, uint64_t off, uint32_t len);
  bool CopyAndWrite(const uint8_t* header, uint64_t off, uint32_t len);
  void WriteAndAnswer(const uint8_t* header, const WriteTarget& t, uint64_t off, uint32_t len, const uint8_t* payload);
  bool CopyOut(ThreadCopies& copies, int origin_fd, uint64_t* seq);
  void Park(const uint8_t* header, uint64_t off, uint32_t len, const uint8_t* payload, std::shared_ptr<ThreadCopies> copies,
            uint64_t seq);
  void FinishParked();
  void Cancel(const uint8_t* header, const WriteTarget& t, uint64_t off, uint32_t len);
  bool GatherMore();
  bool SendWriteReply(const ThreadIo& io);
  void End(const std::string& why, bool error);
  void MarkMid(bool mid);

  const int fd_;
  const int wake_fd_;
  const std::shared_ptr<WriteMap> map_;
  const ReceiverOptions opts_;
  const std::function<void()> notify_;
  AlignedBuffer buf_;          // received, not parsed yet: [0, have_)
  size_t have_ = 0;
  size_t pos_ = 0;             // Parse's cursor
  WriteTarget target_;            // where the request being done goes (its room for pieces is kept)
  std::vector<PieceRun> runs_;    // its pieces grouped by file (piece_io.h), kept likewise
  AlignedBuffer payload_;         // a fast WRITE's payload that did not come with its header; a small READ's reply
  AlignedBuffer chunk_;           // a chunk being copied (thread_copies.h)
  PayloadPipe pipe_;              // a large fast WRITE's payload on its way to the file (payload_pipe.h)
  bool splice_ = false;           // the socket is non-blocking, so splice from it can wait in poll
  std::vector<uint64_t> unmarked_;  // the chunks under a first write that need copying
  std::vector<uint64_t> copied_;    // those this write copies (the rest a parked write copied)
  ParkedWrites parked_;            // first writes waiting for their commit (persistent snapshot)
  uint8_t head_alone_[28];        // a large READ's reply header (kStructuredDataHead bytes at most) (its data is sent from the file)
  uint64_t forward_left_ = 0;  // payload bytes of a handed-over request still to come
  bool raw_ = false;           // stream damaged: hand over everything
  bool header_only_ = false;   // the next read stops at the end of a header
  PendingWrites js_writes_;    // WRITEs handed to the event loop and not answered yet
  std::atomic<int64_t> mid_since_ms_{0};
  std::atomic<bool> paused_{false};
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::deque<ReceiverEvent> events_;
  bool notified_ = false;
  size_t quiet_ = 0;           // events pushed without waking the event loop (requests it answered)
  SharedOutput out_;
  std::string end_;
  bool end_is_error_ = false;
  bool ended_ = false;
  std::thread thread_;
  bool joined_ = false;
};

}  // namespace dmkit
