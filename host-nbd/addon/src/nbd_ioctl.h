// The kernel's older NBD ioctl interface, for kernels or setups without the netlink one: the
// device is configured with ioctls on an open /dev/nbdN, then NBD_DO_IT runs it and blocks in the
// calling thread until the device is disconnected.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "status.h"

namespace dmkit {

struct NbdIoctlParams {
  std::string path;         // /dev/nbdN
  uint64_t size_bytes = 0;  // a multiple of block_size
  uint64_t block_size = 0;  // a power of two in 512..4096
  uint64_t flags = 0;       // the export's transmission flags
  uint64_t timeout_s = 0;   // per-request timeout; 0 = none
  std::vector<int> fds;     // one connected socket per connection
};

// Opens the device and configures it (block size, size, flags, timeout, sockets). On success *fd
// is the open device, to be passed to NbdIoctlRun from the same thread; on failure nothing stays
// configured or open.
Status NbdIoctlSetup(const NbdIoctlParams& p, int* fd);
// NBD_DO_IT: serves until the device is disconnected (or its sockets die), then clears the
// device's sockets and queue and closes fd. Blocks for the whole life of the device.
Status NbdIoctlRun(int fd, const std::string& path);
// NBD_SET_SIZE (bytes; the device keeps its block size) on an open of `path`: on a running device
// (NBD_DO_IT in progress elsewhere) the kernel applies the new capacity at once. The kernel
// refuses it on netlink-connected devices (EINVAL), as every ioctl but DISCONNECT/CLEAR_SOCK.
Status NbdIoctlSetSize(const std::string& path, uint64_t size_bytes);
// NBD_DISCONNECT on an open of `path`: the kernel sends NBD_CMD_DISC, the server closes, and the
// NBD_DO_IT of the owner returns. The kernel accepts this ioctl on netlink-connected devices too.
Status NbdIoctlDisconnect(const std::string& path);

}  // namespace dmkit
