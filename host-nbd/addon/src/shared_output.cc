#include "shared_output.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>

namespace dmkit {

namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

bool Again(int e) { return e == EAGAIN || e == EWOULDBLOCK || e == EINTR; }

}  // namespace

bool SharedOutput::TryClaim() {
  wanted_ = true;
  std::unique_lock<std::mutex> lock(mu_, std::try_to_lock);
  if (!lock.owns_lock()) return false;
  claimed_ = true;
  wanted_ = false;
  return true;
}

void SharedOutput::Release() {
  std::lock_guard<std::mutex> lock(mu_);
  claimed_ = false;
}

bool SharedOutput::WaitWritable(int64_t deadline_ms) {
  for (;;) {
    int64_t left = deadline_ms - NowMs();
    if (left <= 0 || stopping_->load()) return false;
    pollfd fds[2] = {{fd_, POLLOUT, 0}, {wake_fd_, POLLIN, 0}};
    int r = poll(fds, 2, int(std::min<int64_t>(left, 1000)));
    if (r < 0 && errno != EINTR) return false;
    if (r > 0 && fds[0].revents) return true;
  }
}

SharedOutput::Sent SharedOutput::Send(const uint8_t* head, size_t head_len, const uint8_t* data, size_t data_len,
                                      int file_fd, uint64_t file_pos, uint64_t file_len, std::string* why) {
  std::lock_guard<std::mutex> lock(mu_);
  if (claimed_ || wanted_.load()) return Sent::kNotMine;
  iovec iov[2] = {{const_cast<uint8_t*>(head), head_len}, {const_cast<uint8_t*>(data), data_len}};
  int first = head_len > 0 ? 0 : 1;
  size_t left = head_len + data_len;
  bool started = false;
  int64_t deadline = 0;
  auto broken = [&](const std::string& w) {
    *why = w;
    return Sent::kBroken;
  };
  auto wait = [&]() {
    if (!deadline) deadline = NowMs() + stall_ms_;
    return WaitWritable(deadline);
  };
  while (left > 0) {
    msghdr msg = {};
    msg.msg_iov = iov + first;
    msg.msg_iovlen = size_t(2 - first);
    ssize_t n = sendmsg(fd_, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
      if (!Again(errno)) return started ? broken(std::string("output error: ") + strerror(errno)) : Sent::kNotMine;
      if (!started) return Sent::kNotMine;  // no room: the event loop's writes will queue it
      if (!wait()) return broken("the client stopped reading replies (one was sent in part)");
      continue;
    }
    started = true;
    left -= size_t(n);
    size_t k = size_t(n);
    while (first < 2 && k >= iov[first].iov_len) k -= iov[first++].iov_len;
    if (first < 2) {
      iov[first].iov_base = static_cast<uint8_t*>(iov[first].iov_base) + k;
      iov[first].iov_len -= k;
    }
  }
  off_t pos = off_t(file_pos);
  while (file_len > 0) {
    ssize_t n = sendfile(fd_, file_fd, &pos, size_t(std::min<uint64_t>(file_len, 1u << 30)));
    if (n > 0) {
      file_len -= uint64_t(n);
      continue;
    }
    if (n == 0) return broken("a read reply could not be sent: sendfile: the file ends before the read does (shortened while in use?)");
    if (!Again(errno)) return broken(std::string("a read reply could not be sent: sendfile: ") + strerror(errno));
    if (!wait()) return broken("the client stopped reading replies (one was sent in part)");
  }
  return Sent::kWhole;
}

}  // namespace dmkit
