#include "file_view.h"

#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "piece_io.h"

namespace dmkit {

namespace {

// tmpfs and ramfs give a page to every hole a mapping's read fault touches: reading a sparse
// image that way would fill the filesystem (and on a full one, fail the read). pread of a hole
// there allocates nothing.
bool FaultsFillHoles(int fd) {
  constexpr long kTmpfs = 0x01021994, kRamfs = 0x858458f6;
  struct statfs fs;
  return fstatfs(fd, &fs) != 0 || long(fs.f_type) == kTmpfs || long(fs.f_type) == kRamfs;
}

}  // namespace

std::shared_ptr<const FileView> FileView::Map(int fd, uint64_t pos, uint64_t len) {
  static const uint64_t page = uint64_t(sysconf(_SC_PAGESIZE));
  if (len == 0 || FaultsFillHoles(fd)) return nullptr;
  uint64_t start = pos - pos % page, map_len = pos - start + len;
  if (map_len > SIZE_MAX) return nullptr;
  void* map = mmap(nullptr, size_t(map_len), PROT_READ, MAP_SHARED, fd, off_t(start));
  if (map == MAP_FAILED) return nullptr;
  const uint8_t* base = static_cast<const uint8_t*>(map) + (pos - start);
  return std::shared_ptr<const FileView>(new FileView(map, size_t(map_len), base, pos, len));
}

FileView::~FileView() { munmap(map_, map_len_); }

bool FileHolds(int fd, uint64_t pos, uint64_t len) {
  struct stat st;
  return fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && uint64_t(st.st_size) >= pos + len;
}

namespace {

bool AllZero(const uint8_t* p, size_t n) { return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0); }

}  // namespace

bool AnyZeroGranule(int fd, uint64_t pos, uint64_t len, uint64_t granule, bool* failed) {
  constexpr size_t kProbe = 64;  // data rarely starts with this many zero bytes
  uint8_t probe[kProbe];
  std::vector<uint8_t> whole;
  *failed = false;
  for (uint64_t at = 0; at < len; at += granule) {
    size_t n = size_t(std::min(granule, len - at));
    size_t head = std::min(n, kProbe);
    if (PreadAll(fd, probe, head, pos + at) != 0) return *failed = true;
    if (!AllZero(probe, head)) continue;
    whole.resize(n);
    if (PreadAll(fd, whole.data(), n, pos + at) != 0) return *failed = true;
    if (AllZero(whole.data(), n)) return true;
  }
  return false;
}

}  // namespace dmkit
