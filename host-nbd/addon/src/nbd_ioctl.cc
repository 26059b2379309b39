#include "nbd_ioctl.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/nbd.h>
#include <sys/ioctl.h>
#include <unistd.h>

namespace dmkit {

namespace {

Status Ioctl(int fd, unsigned long request, unsigned long arg, const char* name, const std::string& path) {
  int r;
  do {
    r = ioctl(fd, request, arg);
  } while (r < 0 && errno == EINTR);
  if (r < 0) return Status::Fail(errno, std::string(name) + " on " + path);
  return Status::Ok();
}

}  // namespace

Status NbdIoctlSetup(const NbdIoctlParams& p, int* out_fd) {
  if (p.block_size == 0 || p.size_bytes % p.block_size != 0) {
    return Status::Fail(EINVAL, "size " + std::to_string(p.size_bytes) + " is not a multiple of block size " +
                                    std::to_string(p.block_size));
  }
  int fd = open(p.path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return Status::Fail(errno, "open " + p.path);
  Status st = Ioctl(fd, NBD_SET_BLKSIZE, p.block_size, "NBD_SET_BLKSIZE", p.path);
  if (st.ok()) st = Ioctl(fd, NBD_SET_SIZE_BLOCKS, p.size_bytes / p.block_size, "NBD_SET_SIZE_BLOCKS", p.path);
  if (st.ok()) st = Ioctl(fd, NBD_SET_FLAGS, p.flags, "NBD_SET_FLAGS", p.path);
  if (st.ok()) st = Ioctl(fd, NBD_SET_TIMEOUT, p.timeout_s, "NBD_SET_TIMEOUT", p.path);
  bool added_socket = false;
  for (size_t i = 0; st.ok() && i < p.fds.size(); i++) {
    st = Ioctl(fd, NBD_SET_SOCK, static_cast<unsigned long>(p.fds[i]), "NBD_SET_SOCK", p.path);
    added_socket = added_socket || st.ok();
  }
  if (!st.ok()) {
    // Undo a half-done setup so the device is free again (the kernel keeps added sockets).
    if (added_socket) ioctl(fd, NBD_CLEAR_SOCK);
    close(fd);
    return st;
  }
  *out_fd = fd;
  return Status::Ok();
}

Status NbdIoctlRun(int fd, const std::string& path) {
  // No EINTR retry here: the owning thread blocks all signals, and restarting NBD_DO_IT after an
  // interruption would only fail with EBUSY.
  int r = ioctl(fd, NBD_DO_IT);
  Status st = r < 0 ? Status::Fail(errno, "NBD_DO_IT on " + path) : Status::Ok();
  ioctl(fd, NBD_CLEAR_QUE);  // a no-op on current kernels, needed by old ones
  if (ioctl(fd, NBD_CLEAR_SOCK) < 0 && st.ok()) st = Status::Fail(errno, "NBD_CLEAR_SOCK on " + path);
  close(fd);
  return st;
}

Status NbdIoctlSetSize(const std::string& path, uint64_t size_bytes) {
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return Status::Fail(errno, "open " + path);
  Status st = Ioctl(fd, NBD_SET_SIZE, static_cast<unsigned long>(size_bytes), "NBD_SET_SIZE", path);
  close(fd);
  return st;
}

Status NbdIoctlDisconnect(const std::string& path) {
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return Status::Fail(errno, "open " + path);
  Status st = Ioctl(fd, NBD_DISCONNECT, 0, "NBD_DISCONNECT", path);
  close(fd);
  return st;
}

}  // namespace dmkit
