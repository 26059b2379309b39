#include "receiver.h"

#include "all_zero.h"
#include "clock_fd.h"
#include "file_view.h"
#include "piece_io.h"
#include "readable.h"
#include "thread_start.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <stdexcept>

namespace dmkit {

namespace {

constexpr uint32_t kRequestMagic = 0x25609513;
constexpr uint16_t kCmdWrite = 1;
constexpr uint16_t kCmdTrim = 4;         // TRIM and WRITE_ZEROES change data too: a write waits behind them
constexpr uint16_t kCmdWriteZeroes = 6;
constexpr size_t kHeader = 28;                 // a simple request header
constexpr size_t kRecvBytes = 256 * 1024;      // one read of the stream
constexpr uint32_t kFastMax = 2 * 1024 * 1024;  // larger writes go to the event loop (the thread holds a whole payload)
constexpr uint32_t kLargeWrite = 32 * 1024;    // after one, read the next header alone (its payload may be large too)
// A fast WRITE with at least this much of its payload still to come goes through a pipe
// (payload_pipe.h); below it the splices cost more than the copy they save.
constexpr uint32_t kPipedMin = 64 * 1024;
constexpr uint32_t kReplyMagic = 0x67446698;
// Writes the thread answered itself wake the event loop (for their bookkeeping) once this many
// wait, or when the thread is about to sleep: not once per write.
constexpr size_t kQuietMax = 64;
constexpr int kQuietLingerMs = 1;
constexpr uint16_t kCmdRead = 0;
constexpr uint32_t kStructuredMagic = 0x668e33ef;
constexpr uint16_t kFlagDone = 1;
constexpr uint16_t kOffsetData = 1;
constexpr size_t kStructuredDataHead = 28;     // chunk header (20) and the offset (8)
// Larger READs are sent from the file (sendfile). Up to here pread + send is faster: the client
// then copies from data this core just wrote, not from cold page-cache pages (docs/performance.md).
constexpr uint32_t kReadCopyMax = kFastMax;
// From here up to kReadCopyMax, a READ is sent from the image's mapping where it has one
// (file_view.h): below, a page fault per page costs more than the copy it saves.
constexpr uint32_t kMappedReadMin = 64 * 1024;

void PutBe32(uint8_t* b, uint32_t v) {
  b[0] = uint8_t(v >> 24);
  b[1] = uint8_t(v >> 16);
  b[2] = uint8_t(v >> 8);
  b[3] = uint8_t(v);
}

uint16_t Be16(const uint8_t* b) { return uint16_t((b[0] << 8) | b[1]); }
uint32_t Be32(const uint8_t* b) { return (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | b[3]; }
uint64_t Be64(const uint8_t* b) { return (uint64_t(Be32(b)) << 32) | Be32(b + 4); }

// Whether bytes wait on the socket (a splice that moved none then found the pipe full).
bool SocketHasBytes(int fd) {
  int waiting = 0;
  return ioctl(fd, FIONREAD, &waiting) == 0 && waiting > 0;
}


// What the event loop hears of a request the thread took through the map.
ThreadIo IoOf(const uint8_t* header, const WriteTarget& t, uint64_t off, uint32_t len, bool is_read) {
  ThreadIo io;
  io.is_read = is_read;
  io.cookie_hi = Be32(header + 8);
  io.cookie_lo = Be32(header + 12);
  io.tag = t.pieces[0].tag;
  io.file_pos = t.pieces[0].pos;
  io.offset = off;
  io.len = len;
  return io;
}

// Counts a WRITE done through t on each file it wrote (file_writes.h): its one piece, or each run
// tried (io.pieces, in the order of the receiver's runs), whether it failed or not.
void CountWrites(const WriteTarget& t, const ThreadIo& io, const std::vector<PieceRun>& runs) {
  if (io.pieces.empty()) {
    if (t.pieces[0].writes) t.pieces[0].writes->Add();
    return;
  }
  for (size_t i = 0; i < io.pieces.size(); i++) {
    for (const FilePiece& p : t.pieces) {
      if (p.fd != runs[i].fd) continue;
      if (p.writes) p.writes->Add();
      break;
    }
  }
}

// Keeps a WriteTarget's room for pieces from request to request, not its hold on the extents
// (their descriptors close once the map no longer has them).
struct TargetScope {
  WriteTarget& t;
  ~TargetScope() { t.hold.reset(); }
};

// Whether a structured reply from the event loop would hold a hole chunk: it cuts a read into
// 64 KiB pieces from its start and sends each piece of zeroes as a hole (transmission.js,
// HOLE_GRANULE).
constexpr size_t kHoleGranule = 64 * 1024;
bool AnyZeroPiece(const uint8_t* p, size_t n) {
  for (size_t at = 0; at < n; at += kHoleGranule) {
    if (AllZero(p + at, std::min(kHoleGranule, n - at))) return true;
  }
  return false;
}


}  // namespace

Receiver::Receiver(int fd, std::shared_ptr<WriteMap> map, ReceiverOptions opts, std::vector<uint8_t> initial,
                   std::function<void()> notify)
    : fd_(fd), wake_fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)), map_(std::move(map)), opts_(opts),
      notify_(std::move(notify)), buf_(std::max(kRecvBytes, initial.size())), out_(fd, wake_fd_, &stopping_, opts.stall_ms) {
  if (wake_fd_ < 0) throw std::runtime_error(std::string("eventfd: ") + strerror(errno));
  std::copy(initial.begin(), initial.end(), buf_.data());
  have_ = initial.size();
  int fl = fcntl(fd_, F_GETFL);
  splice_ = fl >= 0 && (fl & O_NONBLOCK);
}

Receiver::~Receiver() {
  Stop();
  close(fd_);
  close(wake_fd_);
}

void Receiver::Start() { thread_ = StartQuietThread("dmkit-recv", [this] { Run(); }); }

void Receiver::Stop() {
  if (joined_) return;
  stopping_ = true;
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof one);
  if (map_) map_->snapshot_reads().Wake();  // a thread waiting for a snapshot read: the event loop waits here
  if (thread_.joinable()) thread_.join();
  joined_ = true;
}

void Receiver::SetPaused(bool paused) {
  paused_ = paused;
  if (!paused) {
    uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof one);
  }
}

int64_t Receiver::MidRequestMs() const {
  int64_t since = mid_since_ms_.load();
  return since == 0 ? 0 : std::max<int64_t>(1, NowMs() - since);
}

void Receiver::MarkMid(bool mid) {
  if (!mid) mid_since_ms_ = 0;
  else if (mid_since_ms_.load() == 0) mid_since_ms_ = NowMs();
}

void Receiver::Take(std::vector<ReceiverEvent>* out, std::string* end, bool* end_is_error) {
  std::lock_guard<std::mutex> lock(mu_);
  out->assign(std::make_move_iterator(events_.begin()), std::make_move_iterator(events_.end()));
  events_.clear();
  notified_ = false;
  *end = end_;
  *end_is_error = end_is_error_;
}

void Receiver::Push(ReceiverEvent e, bool quiet) {
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(std::move(e));
    if (quiet && ++quiet_ < kQuietMax) return;
    quiet_ = 0;
    wake = !notified_;
    notified_ = true;
  }
  if (wake) notify_();
}

// Before the thread sleeps: the quiet events waiting go to the event loop now (a suspend waits
// for them to be accounted for).
void Receiver::WakeForQuiet() {
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (events_.empty() || notified_) return;
    quiet_ = 0;
    wake = notified_ = true;
  }
  if (wake) notify_();
}

// A WRITE's simple reply (success), sent by the thread when the socket is not the event loop's:
// false leaves it to the event loop. One that broke off half-way ends the connection.
bool Receiver::SendWriteReply(const ThreadIo& io) {
  uint8_t reply[16];
  PutBe32(reply, kReplyMagic);
  PutBe32(reply + 4, 0);
  PutBe32(reply + 8, io.cookie_hi);
  PutBe32(reply + 12, io.cookie_lo);
  std::string why;
  SharedOutput::Sent sent = out_.Send(reply, sizeof reply, -1, 0, 0, &why);
  if (sent == SharedOutput::Sent::kBroken) {
    End(why, true);
    stopping_ = true;
  }
  return sent != SharedOutput::Sent::kNotMine;
}

// A READ with no flags, whole sectors, inside one segment of the map: answered from here (data
// up to kReadCopyMax read into memory first, in pieces across chunks of a striped segment; larger
// ones sent from the file). False leaves it to the event loop: outside the map, a file that ends
// before the read does, zeroes that a structured reply sends as a hole, a read larger than
// kReadCopyMax across chunks (sendfile sends from one file), or the socket is not the thread's now.
bool Receiver::ReadFast(const uint8_t* header, uint64_t off, uint32_t len) {
  if (!map_ || len == 0 || len > opts_.max_request || off % 512 != 0 || len % 512 != 0) return false;
  bool copy = len <= kReadCopyMax;
  WriteTarget& t = target_;
  TargetScope scope{t};
  if (!map_->Acquire(off, len, false, copy, &t)) return false;
  const FilePiece& first = t.pieces[0];
  // Sent from the image's mapping (file_view.h), the data is copied once; it must be in the file
  // now, and readable (readable.h): else pread meets the error and the event loop answers EIO.
  const uint8_t* mapped = copy && len >= kMappedReadMin && t.pieces.size() == 1 && first.mapped &&
                                  FileHolds(first.fd, first.pos, len) && PagesReadable(first.mapped, len).ok()
                              ? first.mapped : nullptr;
  if (mapped) copy = false;
  // A small read's data lands in payload_, its reply's header right before it: one send.
  if (copy) payload_.Reserve(len);
  uint8_t* data = copy ? payload_.data() : nullptr;
  // With structured replies the event loop sends zeroes as hole chunks: such reads are its own.
  bool failed = false;
  bool ours = mapped ? !(opts_.structured && AnyZeroGranule(first.fd, first.pos, len, kHoleGranule, &failed)) && !failed
              : copy ? PreadPieces(t.pieces, data, &runs_) == 0 && !(opts_.structured && AnyZeroPiece(data, len))
                     : (!opts_.structured || lseek(first.fd, off_t(first.pos), SEEK_HOLE) >= off_t(first.pos + len)) &&
                           (first.mapped ? PagesReadable(first.mapped, len) : FileRangeReadable(first.fd, first.pos, len)).ok();
  if (!ours) {
    map_->Release(1);
    return false;
  }
  size_t head_len = opts_.structured ? kStructuredDataHead : 16;
  uint8_t* head = copy ? data - head_len : head_alone_;
  if (opts_.structured) {
    PutBe32(head, kStructuredMagic);
    PutBe32(head + 4, (uint32_t(kFlagDone) << 16) | kOffsetData);
    memcpy(head + 8, header + 8, 8);  // the cookie, as sent
    PutBe32(head + 16, len + 8);
    memcpy(head + 20, header + 16, 8);  // the offset, as sent
  } else {
    PutBe32(head, kReplyMagic);
    PutBe32(head + 4, 0);
    memcpy(head + 8, header + 8, 8);
  }
  std::string why;
  SharedOutput::Sent sent = mapped ? out_.SendMapped(head, head_len, mapped, len, &why)
                            : copy ? out_.Send(head, head_len + len, -1, 0, 0, &why)
                                   : out_.Send(head, head_len, first.fd, first.pos, len, &why);
  if (sent == SharedOutput::Sent::kNotMine) {
    map_->Release(1);
    return false;
  }
  ReceiverEvent e;
  e.is_io = true;
  e.io = IoOf(header, t, off, len, true);
  e.io.replied = true;
  e.io.mapped = mapped != nullptr;
  if (sent == SharedOutput::Sent::kBroken) {
    e.io.err = EPIPE;
    End(why, true);
    stopping_ = true;
  }
  bool quiet = e.io.err == 0;
  Push(std::move(e), quiet);
  return true;
}

void Receiver::End(const std::string& why, bool error) {
  bool wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (ended_) return;
    ended_ = true;
    end_ = why;
    end_is_error_ = error;
    wake = !notified_;
    notified_ = true;
  }
  if (wake) notify_();
}

void Receiver::Forward(const uint8_t* p, size_t n) {
  if (n == 0) return;
  FinishParked();  // the event loop sees the stream's requests in order
  ReceiverEvent e;
  e.bytes.data = static_cast<uint8_t*>(malloc(n));
  if (!e.bytes.data) {
    End("out of memory for received bytes", true);
    stopping_ = true;
    return;
  }
  memcpy(e.bytes.data, p, n);
  e.bytes.len = n;
  Push(e);
}

// Waits until the socket has bytes or the thread is woken (stop, resume): false to stop.
// Quiet events wait for the event loop only while the thread is busy, or idle for less than
// kQuietLingerMs (a client sending its next request): waking it each time the thread catches up
// with the client would cost a wake-up per request again.
bool Receiver::WaitReadable() {
  pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
  int r;
  while ((r = poll(fds, 2, kQuietLingerMs)) < 0 && errno == EINTR) {}
  if (r == 0) {
    WakeForQuiet();
    while ((r = poll(fds, 2, -1)) < 0 && errno == EINTR) {}
  }
  if (r < 0) {
    End(std::string("input error: poll: ") + strerror(errno), true);
    return false;
  }
  if (fds[1].revents) DrainEventFd(wake_fd_);
  return !stopping_;
}

// Receives up to max bytes (at least one, or none when woken while pause is honoured): false
// when the stream ended or the thread stops.
bool Receiver::RecvSome(uint8_t* to, size_t max, size_t* got, bool honour_pause) {
  *got = 0;
  for (;;) {
    if (stopping_) return false;
    ssize_t n = recv(fd_, to, max, MSG_DONTWAIT);
    if (n > 0) {
      *got = size_t(n);
      return true;
    }
    if (n == 0) {
      End("client disconnected", false);
      return false;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      End(std::string("input error: ") + strerror(errno), true);
      return false;
    }
    if (!WaitReadable()) return false;
    if (honour_pause && paused_) return true;
  }
}

void Receiver::Run() {
  bool more = Parse();  // bytes that came with the handshake's last reply
  while (more && !stopping_) {
    if (!GatherMore()) FinishParked();  // before the thread waits for the socket
    if (paused_) {
      FinishParked();  // a pause waits for every request taken
      WakeForQuiet();
      pollfd wake = {wake_fd_, POLLIN, 0};
      if (poll(&wake, 1, -1) > 0) DrainEventFd(wake_fd_);
      continue;
    }
    // After a large write, the next header alone: its payload goes straight to payload_.
    size_t want = header_only_ && have_ < kHeader ? kHeader - have_ : buf_.size() - have_;
    size_t got;
    if (!RecvSome(buf_.data() + have_, want, &got, true)) break;
    have_ += got;
    more = Parse();
  }
  FinishParked();  // never left unanswered and uncounted, whatever ended the stream
}

// Whether parked writes wait for more requests before their commit (parked_writes.h): true once
// the socket turns readable within the wait they are allowed.
bool Receiver::GatherMore() {
  int64_t wait_us = parked_.WaitFor(NowUs());
  if (wait_us == 0) return false;
  pollfd p = {fd_, POLLIN, 0};
  timespec t = {0, long(wait_us) * 1000};
  return ppoll(&p, 1, &t, nullptr) > 0 && (p.revents & POLLIN);
}

bool Receiver::Parse() {
  pos_ = 0;
  size_t forward_from = 0;
  for (;;) {
    if (raw_) {
      pos_ = have_;
      break;
    }
    if (forward_left_ > 0) {
      size_t k = size_t(std::min<uint64_t>(forward_left_, have_ - pos_));
      pos_ += k;
      forward_left_ -= k;
      if (forward_left_ > 0) break;
      continue;
    }
    if (have_ - pos_ < kHeader) break;
    const uint8_t* h = buf_.data() + pos_;
    if (Be32(h) != kRequestMagic) {
      raw_ = true;  // the event loop says why and closes the connection
      continue;
    }
    uint16_t flags = Be16(h + 4), type = Be16(h + 6);
    uint32_t len = Be32(h + 24);
    if (type == kCmdRead && flags == 0) {
      Forward(buf_.data() + forward_from, pos_ - forward_from);
      forward_from = pos_;
      if (ReadFast(h, Be64(h + 16), len)) {
        pos_ += kHeader;
        forward_from = pos_;
        header_only_ = false;
        if (stopping_) return false;
        continue;
      }
    }
    if (type != kCmdWrite) {
      if (type == kCmdTrim || type == kCmdWriteZeroes) js_writes_.Add(Be64(h + 8), Be64(h + 16), len);
      header_only_ = false;
      pos_ += kHeader;  // no other command carries a payload with simple headers
      continue;
    }
    uint64_t off = Be64(h + 16);
    bool plain = flags == 0 && len > 0 && len <= kFastMax && len <= opts_.max_request && len % 512 == 0 && off % 512 == 0 &&
                 map_ && !js_writes_.Overlaps(off, len);
    bool fast = plain && map_->Covers(off, len, true, true);
    if (plain && !fast && map_->Copies() && map_->InGuardedExtent(off, len)) {
      Forward(buf_.data() + forward_from, pos_ - forward_from);
      if (!CopyAndWrite(h, off, len)) return false;
      if (stopping_) return false;
      forward_from = pos_;
      continue;
    }
    if (!fast) {
      header_only_ = false;
      js_writes_.Add(Be64(h + 8), off, len);
      pos_ += kHeader;
      forward_left_ = len;
      continue;
    }
    if (parked_.Overlaps(off, len)) FinishParked();  // never overtakes a parked write
    Forward(buf_.data() + forward_from, pos_ - forward_from);
    uint8_t header[kHeader];
    memcpy(header, h, kHeader);
    pos_ += kHeader;
    Payload payload = PipeOrReceivePayload(len);
    if (!payload.data && !payload.piped) return false;  // the stream ended, or the thread stops: never answered
    WriteTarget& t = target_;
    TargetScope scope{t};
    bool acquired = map_->Acquire(off, len, true, true, &t);
    if (payload.piped && !(acquired && t.pieces.size() == 1)) {
      // Into memory after all: for the event loop, or for pieces in several files.
      payload.data = PipeToMemory(len, len);
      payload.piped = false;
      if (!payload.data) {
        if (acquired) map_->Release(1);
        return false;
      }
    }
    if (!acquired) {
      // Withdrawn while the payload arrived (a suspend): the event loop takes the request.
      header_only_ = false;
      js_writes_.Add(Be64(header + 8), off, len);
      ForwardRequest(header, payload.data, len);
    } else {
      WriteAndAnswer(header, t, off, len, payload.data);
      header_only_ = len >= kLargeWrite;
      if (stopping_) return false;
    }
    forward_from = pos_;
  }
  Forward(buf_.data() + forward_from, pos_ - forward_from);
  memmove(buf_.data(), buf_.data() + pos_, have_ - pos_);
  have_ -= pos_;
  pos_ = 0;
  MarkMid(!raw_ && (have_ > 0 || forward_left_ > 0));
  return true;
}

// A fast WRITE's whole payload, before the map is asked where it goes: a client that stops
// half-way must not hold up a suspend. Points into buf_ when all of it came with the header,
// else into payload_; null when the stream ended or the thread stops.
const uint8_t* Receiver::ReceivePayload(uint32_t len) {
  MarkMid(true);
  size_t in_buf = std::min<size_t>(len, have_ - pos_);
  if (in_buf == len) {
    pos_ += len;
    return buf_.data() + pos_ - len;
  }
  payload_.Reserve(len);
  memcpy(payload_.data(), buf_.data() + pos_, in_buf);
  pos_ += in_buf;
  FinishParked();  // before the thread waits for the socket
  return ReceiveRest(in_buf, len);
}

// The rest of a payload whose first `got` bytes are in payload_ (room for len), received there:
// payload_'s data, or null when the stream ended or the thread stops.
const uint8_t* Receiver::ReceiveRest(size_t got, uint32_t len) {
  while (got < len) {
    size_t n;
    if (!RecvSome(payload_.data() + got, len - got, &n, false)) return nullptr;
    got += n;
  }
  return payload_.data();
}

// A fast WRITE's whole payload, as ReceivePayload, but a large one with most of it still to come
// is moved into pipe_ (payload_pipe.h), or into memory where the pipe fills first.
Receiver::Payload Receiver::PipeOrReceivePayload(uint32_t len) {
  Payload out;
  size_t in_buf = std::min<size_t>(len, have_ - pos_);
  if (!splice_ || len - in_buf < kPipedMin || !pipe_.Fits(len, kFastMax) || pipe_.Put(buf_.data() + pos_, in_buf) != 0) {
    out.data = ReceivePayload(len);
    return out;
  }
  MarkMid(true);
  pos_ += in_buf;
  FinishParked();  // before the thread waits for the socket
  size_t got = in_buf;
  bool bytes_waited = false;  // the last splice found nothing to move, yet the socket had bytes
  while (got < len) {
    if (stopping_) {
      pipe_.Drop();
      return out;
    }
    ssize_t n = pipe_.FromSocket(fd_, len - got);
    if (n > 0) {
      got += size_t(n);
      bytes_waited = false;
      continue;
    }
    if (n == 0) {
      pipe_.Drop();
      End("client disconnected", false);
      return out;
    }
    if (errno == EAGAIN && SocketHasBytes(fd_)) {
      // Twice in a row: the pipe is full (sent in more pieces than it holds). Once may be bytes
      // that arrived just after the splice looked.
      if (bytes_waited) {
        out.data = PipeToMemory(len, got);
        return out;
      }
      bytes_waited = true;
      continue;
    }
    if (errno != EAGAIN) {
      pipe_.Drop();
      End(std::string("input error: ") + strerror(errno), true);
      return out;
    }
    bytes_waited = false;
    if (!WaitReadable()) {
      pipe_.Drop();
      return out;
    }
  }
  out.piped = true;
  return out;
}

// The got bytes of a payload in pipe_ moved into payload_, and the rest of its len received
// there: payload_'s data, or null when the stream ended or the thread stops.
const uint8_t* Receiver::PipeToMemory(uint32_t len, size_t got) {
  payload_.Reserve(len);
  if (int err = pipe_.Take(payload_.data(), got)) {
    End(std::string("input error: reading a payload back from its pipe: ") + strerror(err), true);
    return nullptr;
  }
  return ReceiveRest(got, len);
}

// The payload in pipe_ written to its one piece, in the file's write turn: 0 or the errno.
int32_t Receiver::WritePiped(const FilePiece& p) {
  WriteTurn turn(p.writes);
  int err = pipe_.ToFile(p.fd, p.pos, p.len);
  if (err != EINVAL || pipe_.held() != p.len) return err;
  payload_.Reserve(p.len);  // a file that takes no splice: through memory
  if ((err = pipe_.Take(payload_.data(), p.len))) return err;
  return PwriteAll(p.fd, payload_.data(), p.len, p.pos);
}

// A WRITE over origin chunks not copied yet, while copies are lent (thread_copies.h): the chunks
// copied, then the write done and answered as a fast one once no snapshot read counts its chunks
// (snapshot_reads.h), or parked until the copies' exceptions are committed (persistent snapshot).
// False: the stream ended, or the thread stops. A write that cannot be done so goes to the event loop.
bool Receiver::CopyAndWrite(const uint8_t* h, uint64_t off, uint32_t len) {
  uint8_t header[kHeader];
  memcpy(header, h, kHeader);
  pos_ += kHeader;
  const uint8_t* payload = ReceivePayload(len);
  if (!payload) return false;  // never answered
  header_only_ = len >= kLargeWrite;
  WriteTarget& t = target_;
  TargetScope scope{t};
  std::shared_ptr<ThreadCopies> copies;
  bool acquired = map_->AcquireForCopy(off, len, &t, &copies, &unmarked_);
  if (acquired && !parked_.Joins(copies)) FinishParked();
  uint64_t seq = 0;
  if (!acquired || !CopyOut(*copies, t.pieces[0].fd, &seq)) {
    if (acquired) map_->Release(1);
    js_writes_.Add(Be64(header + 8), off, len);
    ForwardRequest(header, payload, len);
    return true;
  }
  if (copies->persistent()) {
    Park(header, off, len, payload, std::move(copies), seq);
    return true;
  }
  // Marked only now: a write elsewhere that found a chunk marked would not wait for the reads.
  if (!map_->snapshot_reads().WaitOver(off, len, copies->chunk_bytes(), stopping_)) {
    Cancel(header, t, off, len);
    return true;
  }
  for (uint64_t c : copied_) map_->Mark(c, 1);  // copied: writes there go straight on from now
  WriteAndAnswer(header, t, off, len, payload);
  return true;
}

// A write the thread stops before doing: reported failed (ECANCELED), never answered by the
// thread; the connection is closing (a write whose connection died may or may not land).
void Receiver::Cancel(const uint8_t* header, const WriteTarget& t, uint64_t off, uint32_t len) {
  ReceiverEvent e;
  e.is_io = true;
  e.io = IoOf(header, t, off, len, false);
  e.io.err = ECANCELED;
  Push(std::move(e));
}

// A WRITE taken through the map (t): written (from payload, or from pipe_ when it is null),
// counted, answered if it succeeded and the socket is the thread's, and reported.
void Receiver::WriteAndAnswer(const uint8_t* header, const WriteTarget& t, uint64_t off, uint32_t len, const uint8_t* payload) {
  ReceiverEvent e;
  e.is_io = true;
  e.io = IoOf(header, t, off, len, false);
  // answered only once every piece is written
  e.io.err = payload ? PwritePieces(t.pieces, payload, &e.io, &runs_) : WritePiped(t.pieces[0]);
  e.io.spliced = payload == nullptr;
  CountWrites(t, e.io, runs_);  // before the reply: a FLUSH sent after it must find the write counted
  e.io.replied = e.io.err == 0 && SendWriteReply(e.io);
  bool quiet = e.io.replied;
  Push(std::move(e), quiet);
}

// Copies each chunk of unmarked_ that no parked write copied into the next lent COW chunk, as the
// core's copy would (the whole chunk, read from the origin file, cut at its end), and logs it
// (seq: the last entry's number, persistent); the chunks are marked copied once no snapshot read
// counts them and, with a persistent snapshot, once committed (CopyAndWrite, FinishParked), just
// before the write over them. False when the write must go to the
// event loop: another write holds one of the chunks, too few are lent, or a copy failed (the
// chunks copied before it stay copied, committed; the core copies the rest, or fails).
bool Receiver::CopyOut(ThreadCopies& copies, int origin_fd, uint64_t* seq) {
  copied_.clear();
  for (uint64_t c : unmarked_) {
    if (!parked_.Copied(c)) copied_.push_back(c);
  }
  const std::vector<uint64_t>& chunks = copied_;
  size_t claimed = 0;
  while (claimed < chunks.size() && copies.Claim(chunks[claimed])) claimed++;
  uint64_t first = 0;
  if (claimed < chunks.size() || (!chunks.empty() && !copies.Take(chunks.size(), &first))) {
    for (size_t i = 0; i < claimed; i++) copies.Unclaim(chunks[i]);
    return false;
  }
  uint64_t chunk_bytes = copies.chunk_bytes();
  chunk_.Reserve(chunk_bytes);
  for (size_t i = 0; i < chunks.size(); i++) {
    uint64_t k = chunks[i], bytes = copies.CopyBytes(k), cow = copies.ChunkAt(first + i);
    bool ok = bytes > 0 && PreadAll(origin_fd, chunk_.data(), bytes, k * chunk_bytes) == 0 &&
              PwriteAll(copies.cow_fd(), chunk_.data(), bytes, cow * chunk_bytes) == 0;
    if (!ok) {
      for (size_t j = i; j < chunks.size(); j++) {
        copies.Log(ThreadCopies::kWasted, copies.ChunkAt(first + j));
        copies.Unclaim(chunks[j]);
      }
      copies.Commit(*seq);  // what this write did copy is the core's from now on: on disk first
      return false;
    }
    *seq = copies.Log(k, cow);
  }
  return true;
}

// A first write whose copies wait for their commit: kept, with its payload and its place in the
// map, until FinishParked.
void Receiver::Park(const uint8_t* header, uint64_t off, uint32_t len, const uint8_t* payload,
                    std::shared_ptr<ThreadCopies> copies, uint64_t seq) {
  ParkedWrite w;
  memcpy(w.header, header, kHeader);
  w.off = off;
  w.len = len;
  w.payload.assign(payload, payload + len);
  w.target = std::move(target_);
  w.copied = copied_;
  w.chunk_bytes = copies->chunk_bytes();
  parked_.Park(std::move(w), std::move(copies), seq, NowUs());
  if (parked_.Full()) FinishParked();
}

// The parked writes committed, then each one's chunks marked copied and the write done and answered.
void Receiver::FinishParked() {
  if (parked_.empty()) return;
  parked_.Finish([this](ParkedWrite& w) {
    // No snapshot read of the old bytes may be left when the write lands (snapshot_reads.h), nor
    // may a write elsewhere find the chunks marked before then.
    if (!map_->snapshot_reads().WaitOver(w.off, w.len, w.chunk_bytes, stopping_)) {
      Cancel(w.header, w.target, w.off, w.len);
      return;
    }
    for (uint64_t c : w.copied) map_->Mark(c, 1);
    WriteAndAnswer(w.header, w.target, w.off, w.len, w.payload.data());
  });
}

void Receiver::ForwardRequest(const uint8_t* header, const uint8_t* payload, uint32_t len) {
  std::vector<uint8_t> whole(header, header + kHeader);
  whole.insert(whole.end(), payload, payload + len);
  Forward(whole.data(), whole.size());
}

}  // namespace dmkit
