#include "shared_output.h"

#include <errno.h>
#include <string.h>

#include <chrono>

#include "clock_fd.h"
#include "send_file.h"

namespace dmkit {

// How long a reply of the thread's waits for the event loop's replies to leave (see the header).
constexpr int kClaimWaitMs = 10;

bool SharedOutput::TryClaim() {
  wanted_ = true;
  std::unique_lock<std::mutex> lock(mu_, std::try_to_lock);
  if (!lock.owns_lock()) return false;
  claimed_ = true;
  wanted_ = false;
  return true;
}

void SharedOutput::Release() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    claimed_ = false;
  }
  released_.notify_all();
}

SharedOutput::Sent SharedOutput::Send(const uint8_t* bytes, size_t len, int file_fd, uint64_t file_pos, uint64_t file_len,
                                      std::string* why) {
  std::vector<SendPiece> pieces = {SendPiece{bytes, -1, 0, len}};
  if (file_len > 0) pieces.push_back(SendPiece{nullptr, file_fd, file_pos, file_len});
  return SendAll(pieces, why);
}

SharedOutput::Sent SharedOutput::SendMapped(const uint8_t* bytes, size_t len, const uint8_t* data, uint64_t data_len,
                                            std::string* why) {
  int err = 0;
  Sent sent = SendAll({SendPiece{bytes, -1, 0, len}, SendPiece{data, -1, 0, data_len}}, why, &err);
  if (sent == Sent::kBroken && err == EFAULT) {
    *why = "a read reply could not be sent: its image file was shortened while the reply was sent from it";
  }
  return sent;
}

SharedOutput::Sent SharedOutput::SendAll(const std::vector<SendPiece>& pieces, std::string* why, int* err) {
  std::unique_lock<std::mutex> lock(mu_);
  auto ours = [this] { return (!claimed_ && !wanted_.load()) || stopping_->load(); };
  if (!ours()) released_.wait_for(lock, std::chrono::milliseconds(kClaimWaitMs), ours);
  if (claimed_ || wanted_.load() || stopping_->load()) return Sent::kNotMine;
  uint64_t total = 0;
  for (const SendPiece& p : pieces) total += p.len;
  // Without waiting first: a socket with no room leaves the whole reply to the event loop.
  uint64_t sent = 0;
  Status st = SendPieces(fd_, pieces, 0, &sent);
  if (sent == 0) return Sent::kNotMine;
  const int64_t deadline = NowMs() + stall_ms_;
  while (st.ok() && sent < total && !stopping_->load() && NowMs() < deadline) {
    DrainEventFd(wake_fd_);  // a resume woke us: the receiver reads its flag, not the count
    if (stopping_->load()) break;  // Stop() sets it before its wake-up, which we may just have drained
    uint64_t more = 0;
    st = SendPieces(fd_, PiecesAfter(pieces, sent), int(deadline - NowMs()), &more, wake_fd_);
    sent += more;
  }
  if (!st.ok()) {
    if (err) *err = st.err;
    *why = "a read reply could not be sent: " + st.what + ": " + strerror(st.err);  // as the event loop's (ErrorFrom)
    return Sent::kBroken;
  }
  if (sent < total) {
    *why = "the client stopped reading replies (one was sent in part)";
    return Sent::kBroken;
  }
  return Sent::kWhole;
}

}  // namespace dmkit
