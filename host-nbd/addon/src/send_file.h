// Sends a read reply straight from backing files to a client's socket (sendfile), so that the
// bytes of large reads never pass through JavaScript's thread or the core's memory. Runs in
// libuv's pool; the caller keeps the socket's other writes away while a send is running.
#pragma once

#include <cstdint>
#include <vector>

#include "status.h"

namespace dmkit {

// One piece of a reply: bytes from memory (len bytes at data), or len bytes of file fd at pos.
struct SendPiece {
  const uint8_t* data = nullptr;  // memory piece when non-null
  int fd = -1;                    // file piece otherwise
  uint64_t pos = 0;
  uint64_t len = 0;
};

// Writes the pieces to the non-blocking socket in order. Waits for room in the socket while the
// client reads, but gives up waiting after max_wait_ms in all and returns Ok with *sent short of
// the total: the caller sends the rest itself. A file piece past the end of its file fails with
// EIO (the file was shortened under us; its bytes are not known, zeroes would be a lie). A
// wake_fd that becomes readable ends the wait early too (a receive thread told to stop).
Status SendPieces(int sock, const std::vector<SendPiece>& pieces, int max_wait_ms, uint64_t* sent, int wake_fd = -1);

// The pieces left after the first `skip` bytes of them were sent.
std::vector<SendPiece> PiecesAfter(const std::vector<SendPiece>& pieces, uint64_t skip);

}  // namespace dmkit
