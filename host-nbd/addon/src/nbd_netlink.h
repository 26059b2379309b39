// The kernel's NBD netlink interface (genetlink family "nbd"): connect a device to sockets that
// are already in transmission phase, give a device new sockets after its old ones died, and
// disconnect it. Attribute numbers come from <linux/nbd-netlink.h>.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "status.h"

namespace dmkit {

struct NbdNetlinkParams {
  int32_t index = -1;              // -1 on connect: the kernel picks an unused device (or adds one)
  uint64_t size_bytes = 0;
  uint64_t block_size = 0;         // logical block size, a power of two in 512..4096
  uint64_t server_flags = 0;       // the export's transmission flags, as NBD_OPT_GO gave them
  uint64_t timeout_s = 0;          // per-request timeout; 0 = none
  uint64_t dead_conn_timeout_s = 0;  // how long I/O waits for a reconnect after all sockets die
  std::vector<int> fds;            // one connected socket per connection
  std::string backend;             // identifier shown in /sys/block/nbdN/backend; reconfigure must match
};

// Whether the kernel has the nbd netlink family (resolving it loads the module on demand).
// ENOENT: it has not.
Status NbdNetlinkProbe();
// NBD_CMD_CONNECT. On success *index is the device the kernel connected.
Status NbdNetlinkConnect(const NbdNetlinkParams& p, int32_t* index);
// NBD_CMD_RECONFIGURE with new sockets: each replaces a dead connection of device p.index (the
// kernel silently ignores sockets for which no connection is dead, so callers check first).
Status NbdNetlinkReconfigure(const NbdNetlinkParams& p);
// NBD_CMD_RECONFIGURE with a new size (and the block size it keeps) only: a live device takes it
// at once (Linux 5.3+: nbd_genl_size_set, then nbd_set_size's set_capacity_and_notify).
Status NbdNetlinkResize(int32_t index, uint64_t size_bytes, uint64_t block_size, const std::string& backend);
// NBD_CMD_DISCONNECT: the kernel sends NBD_CMD_DISC on every socket, shuts them down and fails
// any request still queued, so flush before calling this.
Status NbdNetlinkDisconnect(int32_t index);

}  // namespace dmkit
