// The write side of a connection's socket, shared by the event loop (Node's writes, sendfile in
// libuv's pool) and the connection's receive thread (receiver.h). Whoever writes owns it for
// whole replies, so that replies never interleave: the event loop claims it before writing and
// releases it once nothing of its own is leaving; the thread sends a reply only while it is not
// claimed, and holds a lock for the whole reply.
//
// The event loop never waits for the thread: a claim made while the thread is in a reply fails
// (try again soon), and the thread starts no new reply once a claim is wanted. The thread waits a
// little (kClaimWaitMs) for the event loop to release it: handing the reply over instead keeps
// the event loop sending, so the next requests find the socket claimed too, a chain that went on
// for hundreds of reads in a row under nbdcopy. The thread sends without blocking: a socket with
// no room at the start leaves the reply to the event loop; one that took part of a reply must
// take the rest within the stall limit, or the stream is broken.
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "send_file.h"

namespace dmkit {

class SharedOutput {
 public:
  // wake_fd interrupts a wait (with *stopping set, the thread is stopping).
  SharedOutput(int fd, int wake_fd, const std::atomic<bool>* stopping, int stall_ms)
      : fd_(fd), wake_fd_(wake_fd), stopping_(stopping), stall_ms_(stall_ms) {}

  // The event loop's side.
  bool TryClaim();
  void Release();

  enum class Sent { kNotMine, kWhole, kBroken };
  // The thread's side: one reply, `bytes`, then file_len bytes of file_fd from file_pos (through
  // SendPieces). kBroken: part of it left and the rest cannot (why says why).
  Sent Send(const uint8_t* bytes, size_t len, int file_fd, uint64_t file_pos, uint64_t file_len, std::string* why);
  // The same with the reply's data at `data`, apart from `bytes`: a mapped image's pages
  // (file_view.h), which only the kernel reads. A mapped page past the end of its file fails the
  // send with EFAULT: the image was shortened under us, and the stream is broken.
  Sent SendMapped(const uint8_t* bytes, size_t len, const uint8_t* data, uint64_t data_len, std::string* why);

 private:
  Sent SendAll(const std::vector<SendPiece>& pieces, std::string* why, int* err = nullptr);

  const int fd_;
  const int wake_fd_;
  const std::atomic<bool>* const stopping_;
  const int stall_ms_;
  std::mutex mu_;
  std::condition_variable released_;  // the event loop released its claim
  bool claimed_ = true;  // the event loop's until it releases it (the handshake's replies may be leaving)
  std::atomic<bool> wanted_{false};
};

}  // namespace dmkit
