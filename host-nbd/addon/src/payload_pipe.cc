#include "payload_pipe.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

namespace dmkit {

PayloadPipe::~PayloadPipe() { Drop(); }

void PayloadPipe::Drop() {
  if (read_fd_ >= 0) close(read_fd_);
  if (write_fd_ >= 0) close(write_fd_);
  read_fd_ = write_fd_ = -1;
  capacity_ = held_ = 0;
}

bool PayloadPipe::Fits(size_t len, size_t want) {
  if (refused_) return false;
  if (read_fd_ < 0) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return false;
    read_fd_ = fds[0];
    write_fd_ = fds[1];
    // Unprivileged pipes stop at /proc/sys/fs/pipe-max-size (1 MiB unless changed).
    for (size_t size = want; size >= 64 * 1024; size /= 2) {
      int got = fcntl(write_fd_, F_SETPIPE_SZ, int(size));
      if (got > 0) {
        capacity_ = size_t(got);
        break;
      }
    }
    if (capacity_ == 0) {  // over the user's pipe pages (pipe-user-pages-soft): not again
      Drop();
      refused_ = true;
      return false;
    }
  }
  return held_ == 0 && len <= capacity_;
}

int PayloadPipe::Put(const uint8_t* p, size_t n) {
  while (n > 0) {
    ssize_t w = write(write_fd_, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      int err = errno;  // EAGAIN: more pieces than the pipe has room for, which Fits rules out for n <= capacity
      Drop();
      return err;
    }
    p += w;
    n -= size_t(w);
    held_ += size_t(w);
  }
  return 0;
}

ssize_t PayloadPipe::FromSocket(int sock, size_t n) {
  ssize_t got;
  while ((got = splice(sock, nullptr, write_fd_, nullptr, n, SPLICE_F_MOVE | SPLICE_F_NONBLOCK)) < 0 && errno == EINTR) {}
  if (got > 0) held_ += size_t(got);
  return got;
}

int PayloadPipe::ToFile(int fd, uint64_t pos, size_t n) {
  loff_t at = loff_t(pos);
  while (n > 0) {
    ssize_t w = splice(read_fd_, nullptr, fd, &at, n, SPLICE_F_MOVE);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      int err = w < 0 ? errno : EIO;
      if (err == EINVAL && at == loff_t(pos)) return err;  // nothing written: the caller takes it into memory
      Drop();  // what is left of the payload is not written
      return err;
    }
    n -= size_t(w);
    held_ -= size_t(w);
  }
  return 0;
}

int PayloadPipe::Take(uint8_t* to, size_t n) {
  while (n > 0) {
    ssize_t r = read(read_fd_, to, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      int err = r < 0 ? errno : EIO;
      Drop();
      return err;
    }
    to += r;
    n -= size_t(r);
    held_ -= size_t(r);
  }
  return 0;
}

}  // namespace dmkit
