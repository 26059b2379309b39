#include "holes.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <unistd.h>

namespace dmkit {

namespace {

Status Seek(int fd, uint64_t from, int whence, const char* what, int64_t* at) {
  off_t r = lseek(fd, off_t(from), whence);
  if (r >= 0) {
    *at = int64_t(r);
    return Status::Ok();
  }
  if (errno == ENXIO) {  // at or past the end: no more data (for SEEK_HOLE, past the end)
    *at = -1;
    return Status::Ok();
  }
  return Status::Fail(errno, what);
}

}  // namespace

Status NextData(int fd, uint64_t from, int64_t* at) { return Seek(fd, from, SEEK_DATA, "lseek SEEK_DATA", at); }

Status NextHole(int fd, uint64_t from, int64_t* at) { return Seek(fd, from, SEEK_HOLE, "lseek SEEK_HOLE", at); }

Status PunchHole(int fd, uint64_t offset, uint64_t length) {
  if (length == 0) return Status::Ok();
  for (;;) {
    if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off_t(offset), off_t(length)) == 0) return Status::Ok();
    if (errno != EINTR) return Status::Fail(errno, "fallocate PUNCH_HOLE");
  }
}

}  // namespace dmkit
