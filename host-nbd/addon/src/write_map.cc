#include "write_map.h"

#include <unistd.h>

#include <cstdlib>

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
  const WriteExtent* seg = nullptr;  // the segment's first extent (stripe 0)
  uint64_t rel = 0;                  // where the request starts in the segment
};

// The segment holding all of [off, off + len), if the thread may take the request there: inside
// one chunk of a striped segment unless `split`; for a write, every file it touches writable.
Found Find(const WriteExtents* extents, uint64_t off, uint32_t len, bool write, bool split, bool ignore_guard = false) {
  Found none;
  if (!extents || len == 0) return none;
  const std::vector<WriteExtent>& list = extents->list;
  // One past the last extent starting at or before off: the end of off's segment.
  auto it = std::upper_bound(list.begin(), list.end(), off, [](uint64_t o, const WriteExtent& e) { return o < e.start; });
  if (it == list.begin()) return none;
  const WriteExtent& last = *(it - 1);
  if (off >= last.end || len > last.end - off) return none;
  Found f;
  f.seg = &*(it - 1 - last.stripe);  // the segment's extents, in stripe order
  f.rel = off - last.start;
  if (last.chunk == 0) {
    if (!write) return f;
    if (!last.writable || (last.guarded && !ignore_guard && !(extents->marks && extents->marks->AllMarked(off, len)))) return none;
    return f;
  }
  if (!split && len > last.chunk - f.rel % last.chunk) return none;
  if (write) {
    // The stripes it touches follow one another round-robin from the first piece's.
    uint32_t first = StripeMapByte(last.chunk, last.stripes, f.rel).stripe;
    uint32_t touched = StripesTouched(last.chunk, last.stripes, f.rel, len);
    for (uint32_t i = 0; i < touched; i++) {
      if (!f.seg[(first + i) % last.stripes].writable) return none;
    }
  }
  return f;
}

}  // namespace

void WriteMap::Mark(uint64_t first, uint64_t count) {
  std::lock_guard<std::mutex> lock(mu_);
  if (extents_ && extents_->marks) extents_->marks->Mark(first, count);
}

void WriteMap::MarkEach(const uint64_t* chunks, size_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!extents_ || !extents_->marks) return;
  for (size_t i = 0; i < n; i++) extents_->marks->Mark(chunks[i], 1);
}

bool WriteMap::Covers(uint64_t off, uint32_t len, bool write, bool split) {
  std::lock_guard<std::mutex> lock(mu_);
  return Find(extents_.get(), off, len, write, split).seg != nullptr;
}

bool WriteMap::InGuardedExtent(uint64_t off, uint32_t len) {
  std::lock_guard<std::mutex> lock(mu_);
  Found found = Find(extents_.get(), off, len, true, false, true);
  return found.seg && found.seg->guarded;
}

bool WriteMap::AcquireForCopy(uint64_t off, uint32_t len, WriteTarget* out, std::shared_ptr<ThreadCopies>* copies,
                              std::vector<uint64_t>* unmarked) {
  std::lock_guard<std::mutex> lock(mu_);
  const WriteExtents* extents = extents_.get();
  Found found = Find(extents, off, len, true, false, true);
  if (!found.seg || !found.seg->guarded || !extents->marks || !copies_) return false;
  const ChunkMarks& marks = *extents->marks;
  uint64_t c = marks.chunk_bytes();
  if (c != copies_->chunk_bytes()) return false;
  unmarked->clear();
  for (uint64_t k = off / c; k <= (off + len - 1) / c; k++) {
    if (!marks.AllMarked(k * c, c)) unmarked->push_back(k);
  }
  const WriteExtent& e = *found.seg;
  out->where.clear();
  out->pieces.resize(1);
  out->pieces[0] = FilePiece{e.fd, e.tag, e.file_pos + found.rel, 0, len, e.writes.get()};
  *copies = copies_;
  inflight_.fetch_add(1);
  out->hold = extents_;
  return true;
}

std::weak_ptr<const WriteExtents> WriteMap::Generation() {
  std::lock_guard<std::mutex> lock(mu_);
  return extents_;
}

bool WriteMap::IsGeneration(const std::weak_ptr<const WriteExtents>& g) {
  std::lock_guard<std::mutex> lock(mu_);
  std::shared_ptr<const WriteExtents> held = g.lock();
  return held && held == extents_;
}

void WriteMap::EnableCopies(std::shared_ptr<ThreadCopies> copies) {
  std::lock_guard<std::mutex> lock(mu_);
  copies_ = std::move(copies);
}

void WriteMap::DisableCopies() {
  std::lock_guard<std::mutex> lock(mu_);
  copies_.reset();
}

std::shared_ptr<ThreadCopies> WriteMap::Copies() {
  std::lock_guard<std::mutex> lock(mu_);
  return copies_;
}

bool WriteMap::Acquire(uint64_t off, uint32_t len, bool write, bool split, WriteTarget* out) {
  return Locate(off, len, write, split, out, true);
}

bool WriteMap::Peek(uint64_t off, uint32_t len, bool write, bool split, WriteTarget* out) {
  return Locate(off, len, write, split, out, false);
}

bool WriteMap::Locate(uint64_t off, uint32_t len, bool write, bool split, WriteTarget* out, bool count) {
  std::lock_guard<std::mutex> lock(mu_);
  Found found = Find(extents_.get(), off, len, write, split);
  if (!found.seg) return false;
  StripePieces(found.seg->chunk, found.seg->stripes, found.rel, len, &out->where);
  out->pieces.resize(out->where.size());
  for (size_t i = 0; i < out->where.size(); i++) {
    const StripePiece& w = out->where[i];
    const WriteExtent& e = found.seg[w.stripe];
    uint64_t pos = e.file_pos + w.offset;
    out->pieces[i] = FilePiece{e.fd, e.tag, pos, w.at, w.len, e.writes.get(), e.view ? e.view->At(pos, w.len) : nullptr};
  }
  if (count) inflight_.fetch_add(1);
  out->hold = extents_;
  return true;
}

}  // namespace dmkit
