// Bits per chunk shared between threads (ChunkMarks).
#pragma once

#include <atomic>
#include <cstdint>

namespace dmkit {

// One bit per chunk of a device (fixed size, from device byte 0), atomics that threads read and
// set while others set them too; zeroed lazily (calloc): a large origin's untouched chunks cost
// no memory. As an origin's marks (write_map.h), a chunk that needs no snapshot copy any more,
// only ever set; as claims (thread_copies.h), a chunk a thread copies, given back if it fails.
class ChunkMarks {
 public:
  ChunkMarks(uint64_t chunk_bytes, uint64_t device_bytes);
  ~ChunkMarks();
  ChunkMarks(const ChunkMarks&) = delete;
  ChunkMarks& operator=(const ChunkMarks&) = delete;
  bool ok() const { return words_ != nullptr; }
  uint64_t chunk_bytes() const { return chunk_bytes_; }
  uint64_t chunks() const { return chunks_; }
  // Marks chunks [first, first + count) (clipped to the device).
  void Mark(uint64_t first, uint64_t count) const;
  // Whether every chunk under device bytes [off, off + len) is marked (len > 0).
  bool AllMarked(uint64_t off, uint64_t len) const;
  // Marks chunk c: false if it was marked already (or lies past the device).
  bool TryMark(uint64_t c) const;
  // Clears chunk c's mark.
  void Clear(uint64_t c) const;

 private:
  uint64_t chunk_bytes_;
  uint64_t chunks_;
  std::atomic<uint64_t>* words_;
};

}  // namespace dmkit
