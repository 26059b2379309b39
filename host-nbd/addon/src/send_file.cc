#include "send_file.h"

#include "clock_fd.h"

#include <errno.h>
#include <poll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>

#include <algorithm>
#include <string>

namespace dmkit {

namespace {

// Waits until the socket takes bytes again. False when the wait budget is spent, or wake_fd
// (when given) became readable.
bool WaitForRoom(int sock, int64_t deadline, int wake_fd) {
  for (;;) {
    int64_t left = deadline - NowMs();
    if (left <= 0) return false;
    pollfd p[2] = {{sock, POLLOUT, 0}, {wake_fd, POLLIN, 0}};
    int r = poll(p, wake_fd >= 0 ? 2 : 1, int(left));
    if (r > 0 && wake_fd >= 0 && p[1].revents) return false;
    if (r > 0) return true;  // writable, or an error the next send reports
    if (r < 0 && errno != EINTR) return true;
  }
}

// Marks a file piece that reached the end of its file: the file was shortened under us. The
// host's reads fail with EIO there rather than pass zeroes off as the data (file-backing.js);
// so does this, and since the reply's header has gone, the connection cannot go on.
constexpr int64_t kFileEnded = INT64_MIN;

// One step of a piece: bytes written, 0 when the socket is full, -errno on failure, kFileEnded.
int64_t SendSome(int sock, const SendPiece& p, uint64_t done, bool more) {
  uint64_t left = p.len - done;
  int flags = MSG_NOSIGNAL | MSG_DONTWAIT | (more ? MSG_MORE : 0);
  ssize_t n;
  if (p.data) {
    n = send(sock, p.data + done, left, flags);
  } else {
    off_t pos = off_t(p.pos + done);
    n = sendfile(sock, p.fd, &pos, std::min<uint64_t>(left, 1u << 30));
    if (n == 0) return kFileEnded;
  }
  if (n >= 0) return n;
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
  return -errno;
}

}  // namespace

std::vector<SendPiece> PiecesAfter(const std::vector<SendPiece>& pieces, uint64_t skip) {
  std::vector<SendPiece> rest;
  for (SendPiece p : pieces) {
    uint64_t k = std::min(skip, p.len);
    skip -= k;
    if (k == p.len) continue;
    if (p.data) p.data += k;
    else p.pos += k;
    p.len -= k;
    rest.push_back(p);
  }
  return rest;
}

Status SendPieces(int sock, const std::vector<SendPiece>& pieces, int max_wait_ms, uint64_t* sent, int wake_fd) {
  *sent = 0;
  const int64_t deadline = NowMs() + max_wait_ms;
  for (size_t i = 0; i < pieces.size(); i++) {
    const SendPiece& p = pieces[i];
    uint64_t done = 0;
    while (done < p.len) {
      int64_t n = SendSome(sock, p, done, i + 1 < pieces.size());
      if (n == kFileEnded) return Status::Fail(EIO, "sendfile: the file ends before the read does (shortened while in use?)");
      if (n < 0) return Status::Fail(int(-n), p.data ? "send" : "sendfile");
      if (n == 0 && !WaitForRoom(sock, deadline, wake_fd)) return Status::Ok();
      done += uint64_t(n);
      *sent += uint64_t(n);
    }
  }
  return Status::Ok();
}

}  // namespace dmkit
