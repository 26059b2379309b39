// Small descriptor operations Node has no API for: socket pairs, advisory locks, block device
// flushes. Each returns a Status; none touches JavaScript.
#pragma once

#include <string>

#include "status.h"

namespace dmkit {

// A connected pair of Unix stream sockets, close-on-exec.
Status MakeSocketPair(int fds[2]);
// Clears O_NONBLOCK (libuv sets it on descriptors it adopted).
Status SetBlocking(int fd);
// Opens (creating if needed) and locks `path` with flock(LOCK_EX | LOCK_NB). The lock lives as
// long as the returned descriptor, so it is released when its owner exits, however it exits.
// EWOULDBLOCK: another process holds it.
Status LockFile(const std::string& path, int* fd);
// Opens a block device and fsyncs it: its dirty pages are written and a FLUSH reaches the
// device's server. With `exclusive`, the open fails with EBUSY while the device is mounted or
// held by another exclusive user (device-mapper, md, another O_EXCL opener).
Status FlushBlockDevice(const std::string& path, bool exclusive);
// sync(2): writes back every filesystem, including one mounted on an NBD device being detached.
Status SyncAll();

}  // namespace dmkit
