#include "readable.h"

#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>

#include "faults_fill_holes.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

namespace dmkit {

namespace {

std::atomic<bool> unsupported{false};  // the kernel refused MADV_POPULATE_READ once: not asked again

uint64_t PageSize() {
  static const uint64_t page = uint64_t(sysconf(_SC_PAGESIZE));
  return page;
}

// MADV_POPULATE_READ over whole pages starting at page-aligned `start`.
Status Populate(void* start, uint64_t len) {
  if (unsupported.load(std::memory_order_relaxed)) return Status::Ok();
  for (;;) {
    if (madvise(start, len, MADV_POPULATE_READ) == 0) return Status::Ok();
    if (errno == EINTR) continue;
    if (errno == EINVAL) {
      unsupported.store(true, std::memory_order_relaxed);
      return Status::Ok();
    }
    // EFAULT: a page could not be read (SIGBUS on touch); EHWPOISON, ENOMEM: neither is sendable.
    return Status::Fail(EIO, "read of the file's pages before sending them");
  }
}

}  // namespace

Status PagesReadable(const uint8_t* data, uint64_t len) {
  if (len == 0) return Status::Ok();
  uintptr_t at = reinterpret_cast<uintptr_t>(data);
  uintptr_t start = at & ~uintptr_t(PageSize() - 1);
  return Populate(reinterpret_cast<void*>(start), at + len - start);
}

Status FileRangeReadable(int fd, uint64_t pos, uint64_t len) {
  if (len == 0 || unsupported.load(std::memory_order_relaxed) || FaultsFillHoles(fd)) return Status::Ok();
  uint64_t start = pos & ~(PageSize() - 1);
  uint64_t span = pos + len - start;
  void* m = mmap(nullptr, span, PROT_READ, MAP_SHARED, fd, off_t(start));
  if (m == MAP_FAILED) return Status::Ok();  // not mappable: sent unchecked, as before
  Status st = Populate(m, span);
  munmap(m, span);
  return st;
}

}  // namespace dmkit
