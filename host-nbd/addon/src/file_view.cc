#include "file_view.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <iterator>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include "all_zero.h"
#include "faults_fill_holes.h"
#include "piece_io.h"

namespace dmkit {

namespace {

// The files mapped now, by device and inode: extents of one file share its mapping.
struct Views {
  std::mutex mu;
  std::map<std::pair<uint64_t, uint64_t>, std::weak_ptr<const FileView>> by_file;
  int live = 0;
};

Views& views() {
  static Views* v = new Views();  // never destroyed: views may outlive static destruction
  return *v;
}

}  // namespace

std::shared_ptr<const FileView> FileView::Map(int fd, uint64_t pos, uint64_t len) {
  struct stat st;
  if (len == 0 || fstat(fd, &st) != 0 || FaultsFillHoles(fd)) return nullptr;
  uint64_t want = std::max<uint64_t>(pos + len, uint64_t(st.st_size));
  if (want > SIZE_MAX) return nullptr;
  Views& v = views();
  std::shared_ptr<const FileView> same;  // released after the lock: it may be the last holder
  std::lock_guard<std::mutex> lock(v.mu);
  auto key = std::make_pair(uint64_t(st.st_dev), uint64_t(st.st_ino));
  auto it = v.by_file.find(key);
  if (it != v.by_file.end()) {
    same = it->second.lock();
    if (same && same->At(pos, len)) return same;
  }
  if (v.live >= kMaxViews) return nullptr;
  void* map = mmap(nullptr, size_t(want), PROT_READ, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) return nullptr;
  v.live++;
  std::shared_ptr<const FileView> view(new FileView(static_cast<const uint8_t*>(map), want));
  v.by_file[key] = view;
  return view;
}

FileView::~FileView() {
  munmap(const_cast<uint8_t*>(base_), size_t(len_));
  Views& v = views();
  std::lock_guard<std::mutex> lock(v.mu);
  v.live--;
  for (auto it = v.by_file.begin(); it != v.by_file.end();) it = it->second.expired() ? v.by_file.erase(it) : std::next(it);
}

bool FileHolds(int fd, uint64_t pos, uint64_t len) {
  struct stat st;
  return fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && uint64_t(st.st_size) >= pos + len;
}

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
