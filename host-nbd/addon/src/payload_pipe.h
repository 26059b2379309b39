// A large WRITE's payload moved from the socket into a pipe and from the pipe into the image file
// (splice), for the receive thread (receiver.h).
//
// Why: recv + pwrite copy the payload twice, out of the socket's pages into the thread's buffer
// and from there into the file's page cache. splice moves references to the socket's pages into
// the pipe and copies them once, into the page cache: 10–40% less CPU per GiB received in a C
// loop here, TCP and Unix sockets alike (docs/performance.md, "One writer per file, and payloads
// spliced into it").
//
// The whole payload is in the pipe before any of it goes to the file, as a payload in memory is
// before its pwrite: a client that vanishes half-way writes nothing. A pipe holds a bounded number
// of page references, not bytes: a payload that arrived in many small pieces can fill it before it
// is whole. Such a payload, and one the map sends elsewhere, is taken out of the pipe into memory
// and goes the way of any other (Take).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace dmkit {

class PayloadPipe {
 public:
  PayloadPipe() = default;
  ~PayloadPipe();
  PayloadPipe(const PayloadPipe&) = delete;
  PayloadPipe& operator=(const PayloadPipe&) = delete;

  // Whether a payload of len bytes may go through the pipe (made on first use, as large as the
  // system lets a pipe be, up to `want`): false keeps it in memory.
  bool Fits(size_t len, size_t want);
  // The bytes that came with the header, copied in first: 0 or the errno.
  int Put(const uint8_t* p, size_t n);
  // Moves up to n bytes from the (non-blocking) socket: how many, 0 at the stream's end, or -1
  // with errno (EAGAIN: nothing to move now, or the pipe is full while the socket has bytes).
  ssize_t FromSocket(int sock, size_t n);
  // Writes the n bytes in the pipe to fd at pos: 0, or the errno (the pipe is emptied), except
  // EINVAL with all of them still in the pipe: the file takes no splice (Take them).
  int ToFile(int fd, uint64_t pos, size_t n);
  // Reads the n bytes in the pipe into memory: 0, or the errno (the pipe is emptied either way).
  int Take(uint8_t* to, size_t n);
  // Throws away what it holds (a payload cut short): closes the pipe; the next Fits makes another.
  void Drop();
  size_t held() const { return held_; }

 private:
  int read_fd_ = -1;
  int write_fd_ = -1;
  size_t capacity_ = 0;
  size_t held_ = 0;
  bool refused_ = false;  // no pipe of 64 KiB or more could be had: memory from now on
};

}  // namespace dmkit
