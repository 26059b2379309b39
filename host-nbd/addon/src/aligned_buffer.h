// Heap memory whose data starts on a page boundary, with a page of room in front of it (a
// reply's header goes right before its data, so both leave in one send).
//
// Why: the kernel copies into and out of a user buffer at about half speed when the buffer
// does not start on a cache line, and std::vector's large blocks come from mmap 16 bytes past
// a page (docs/performance.md, "buffers 16 bytes off a cache line"). The receive thread's
// buffers take every byte a connection moves: recv into them, pwrite and send out of them.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <new>

namespace dmkit {

class AlignedBuffer {
 public:
  static constexpr size_t kAlign = 4096;
  static constexpr size_t kHeadroom = kAlign;  // bytes writable just before data()

  explicit AlignedBuffer(size_t n = 0) { Reserve(n); }
  ~AlignedBuffer() { std::free(block_); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;

  // At least n bytes at data(). Growing does not keep the contents.
  void Reserve(size_t n) {
    if (block_ && n <= size_) return;
    void* p = nullptr;
    if (posix_memalign(&p, kAlign, kHeadroom + n) != 0) throw std::bad_alloc();
    std::free(block_);
    block_ = static_cast<uint8_t*>(p);
    size_ = n;
  }
  uint8_t* data() { return block_ + kHeadroom; }
  size_t size() const { return size_; }

 private:
  uint8_t* block_ = nullptr;
  size_t size_ = 0;
};

}  // namespace dmkit
