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

struct Found {
  const WriteExtent* extent = nullptr;
  uint64_t pos = 0;  // file offset
};

// Where all of [off, off + len) lands, if in one file (a writable one for a write). Striped: the
// chunk's stripe and row, as dm-stripe maps them; a request across a chunk boundary is not found.
Found Find(const WriteExtents* extents, uint64_t off, uint64_t len, bool write) {
  Found none;
  if (!extents) return none;
  const std::vector<WriteExtent>& list = extents->list;
  // One past the last extent starting at or before off: the end of off's segment.
  auto it = std::upper_bound(list.begin(), list.end(), off, [](uint64_t o, const WriteExtent& e) { return o < e.start; });
  if (it == list.begin()) return none;
  const WriteExtent& last = *(it - 1);
  if (off >= last.end || len > last.end - off) return none;
  uint64_t rel = off - last.start;
  Found f;
  if (last.chunk == 0) {
    f.extent = &last;
    f.pos = last.file_pos + rel;
  } else {
    uint64_t chunk_no = rel / last.chunk, in_chunk = rel % last.chunk;
    if (len > last.chunk - in_chunk) return none;
    uint32_t stripe = uint32_t(chunk_no % last.stripes);
    f.extent = &*(it - 1 - last.stripe + stripe);  // the segment's extents, in stripe order
    f.pos = f.extent->file_pos + (chunk_no / last.stripes) * last.chunk + in_chunk;
  }
  if (write && !f.extent->writable) return none;
  return f;
}

}  // namespace

bool WriteMap::Covers(uint64_t off, uint64_t len, bool write) {
  std::lock_guard<std::mutex> lock(mu_);
  return Find(extents_.get(), off, len, write).extent != nullptr;
}

bool WriteMap::Acquire(uint64_t off, uint64_t len, bool write, WriteTarget* out) {
  std::lock_guard<std::mutex> lock(mu_);
  Found found = Find(extents_.get(), off, len, write);
  if (!found.extent) return false;
  inflight_.fetch_add(1);
  out->hold = extents_;
  out->fd = found.extent->fd;
  out->pos = found.pos;
  out->tag = found.extent->tag;
  return true;
}

}  // namespace dmkit
