// tmpfs and ramfs give a page to every hole that a read fault of a file mapping touches: reading
// a sparse image that way would fill the file system (and on a full one, fail the read). pread of
// a hole there allocates nothing. Users: file_view.cc (such files are not mapped) and readable.cc
// (nor faulted in; nothing on them can fail to read anyway).
#pragma once

#include <sys/vfs.h>

namespace dmkit {

// Whether fd's file lies on tmpfs or ramfs, or its file system cannot be told.
inline bool FaultsFillHoles(int fd) {
  constexpr long kTmpfs = 0x01021994, kRamfs = 0x858458f6;
  struct statfs fs;
  return fstatfs(fd, &fs) != 0 || long(fs.f_type) == kTmpfs || long(fs.f_type) == kRamfs;
}

}  // namespace dmkit
