#include "write_map.h"

#include <unistd.h>

#include <algorithm>

namespace dmkit {

WriteExtents::~WriteExtents() {
  for (const WriteExtent& e : list) close(e.fd);
}

void WriteMap::Publish(std::shared_ptr<const WriteExtents> extents) {
  std::lock_guard<std::mutex> lock(mu_);
  extents_ = std::move(extents);
}

void WriteMap::Withdraw() {
  std::lock_guard<std::mutex> lock(mu_);
  extents_.reset();
}

namespace {

// The extent holding all of [off, off + len) (a writable one for a write), or null.
const WriteExtent* Find(const WriteExtents* extents, uint64_t off, uint64_t len, bool write) {
  if (!extents) return nullptr;
  const std::vector<WriteExtent>& list = extents->list;
  // The last extent starting at or before off.
  auto it = std::upper_bound(list.begin(), list.end(), off, [](uint64_t o, const WriteExtent& e) { return o < e.start; });
  if (it == list.begin()) return nullptr;
  const WriteExtent& e = *--it;
  if (off >= e.end || len > e.end - off || (write && !e.writable)) return nullptr;
  return &e;
}

}  // namespace

bool WriteMap::Covers(uint64_t off, uint64_t len, bool write) {
  std::lock_guard<std::mutex> lock(mu_);
  return Find(extents_.get(), off, len, write) != nullptr;
}

bool WriteMap::Acquire(uint64_t off, uint64_t len, bool write, WriteTarget* out) {
  std::lock_guard<std::mutex> lock(mu_);
  const WriteExtent* found = Find(extents_.get(), off, len, write);
  if (!found) return false;
  const WriteExtent& e = *found;
  inflight_.fetch_add(1);
  out->hold = extents_;
  out->fd = e.fd;
  out->pos = e.file_pos + (off - e.start);
  out->tag = e.tag;
  return true;
}

}  // namespace dmkit
