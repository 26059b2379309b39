#include "fds.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <unistd.h>

namespace dmkit {

Status MakeSocketPair(int fds[2]) {
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0) return Status::Fail(errno, "socketpair");
  return Status::Ok();
}

Status SetBlocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) return Status::Fail(errno, "fcntl F_SETFL");
  return Status::Ok();
}

Status LockFile(const std::string& path, int* out_fd) {
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Status::Fail(errno, "open " + path);
  int r;
  do {
    r = flock(fd, LOCK_EX | LOCK_NB);
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    int e = errno;
    close(fd);
    return Status::Fail(e, "flock " + path);
  }
  *out_fd = fd;
  return Status::Ok();
}

Status FlushBlockDevice(const std::string& path, bool exclusive) {
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC | (exclusive ? O_EXCL : 0));
  if (fd < 0) return Status::Fail(errno, "open " + path);
  int r;
  do {
    r = fsync(fd);
  } while (r < 0 && errno == EINTR);
  int e = errno;
  close(fd);
  if (r < 0) return Status::Fail(e, "fsync " + path);
  return Status::Ok();
}

Status SyncAll() {
  sync();
  return Status::Ok();
}

}  // namespace dmkit
