#include "nbd_netlink.h"

#include <errno.h>
#include <linux/nbd-netlink.h>

#include <optional>

#include "genl.h"

namespace dmkit {

namespace {

// Opens a netlink socket and resolves the nbd family. ENOENT here means the nbd module is not
// loaded (the kernel tries to load it on demand first).
Status OpenNbdFamily(GenlSocket* sock, uint16_t* family) {
  Status st = sock->Open();
  if (!st.ok()) return st;
  return sock->ResolveFamily(NBD_GENL_FAMILY_NAME, family);
}

// The attributes CONNECT and RECONFIGURE share.
void PutSettings(GenlMessage* msg, const NbdNetlinkParams& p, bool with_sizes) {
  if (with_sizes) {
    msg->PutU64(NBD_ATTR_SIZE_BYTES, p.size_bytes);
    msg->PutU64(NBD_ATTR_BLOCK_SIZE_BYTES, p.block_size);
    msg->PutU64(NBD_ATTR_SERVER_FLAGS, p.server_flags);
  }
  msg->PutU64(NBD_ATTR_TIMEOUT, p.timeout_s);
  msg->PutU64(NBD_ATTR_DEAD_CONN_TIMEOUT, p.dead_conn_timeout_s);
  if (!p.backend.empty()) msg->PutString(NBD_ATTR_BACKEND_IDENTIFIER, p.backend);
  size_t socks = msg->BeginNested(NBD_ATTR_SOCKETS);
  for (int fd : p.fds) {
    size_t item = msg->BeginNested(NBD_SOCK_ITEM);
    msg->PutU32(NBD_SOCK_FD, static_cast<uint32_t>(fd));
    msg->EndNested(item);
  }
  msg->EndNested(socks);
}

// One request to the nbd family: opens a socket, resolves the family, starts `cmd` with the
// device's index (CONNECT may leave the choice to the kernel), has `put` add the attributes that
// differ per command, sends it and waits for the ack (*reply: the last reply's attributes).
template <typename Put>
Status NbdRequest(uint8_t cmd, const std::string& what, std::optional<uint32_t> index, Put put,
                  std::vector<uint8_t>* reply = nullptr) {
  GenlSocket sock;
  uint16_t family;
  Status st = OpenNbdFamily(&sock, &family);
  if (!st.ok()) return st;
  GenlMessage msg(family, cmd, NBD_GENL_VERSION);
  if (index) msg.PutU32(NBD_ATTR_INDEX, *index);
  put(&msg);
  return sock.Request(msg, what, reply);
}

}  // namespace

Status NbdNetlinkProbe() {
  GenlSocket sock;
  uint16_t family;
  return OpenNbdFamily(&sock, &family);
}

Status NbdNetlinkConnect(const NbdNetlinkParams& p, int32_t* index) {
  std::optional<uint32_t> wanted;
  if (p.index >= 0) wanted = static_cast<uint32_t>(p.index);
  std::vector<uint8_t> reply;
  Status st = NbdRequest(NBD_CMD_CONNECT, "NBD_CMD_CONNECT", wanted,
                         [&p](GenlMessage* msg) { PutSettings(msg, p, true); }, &reply);
  if (!st.ok()) return st;
  uint32_t got;
  AttrView attrs{reply.data(), reply.size()};
  if (!attrs.GetU32(NBD_ATTR_INDEX, &got)) return Status::Fail(EPROTO, "NBD_CMD_CONNECT (no index in reply)");
  *index = static_cast<int32_t>(got);
  return Status::Ok();
}

Status NbdNetlinkReconfigure(const NbdNetlinkParams& p) {
  // Sockets only: a size change is NbdNetlinkResize's.
  return NbdRequest(NBD_CMD_RECONFIGURE, "NBD_CMD_RECONFIGURE", static_cast<uint32_t>(p.index),
                    [&p](GenlMessage* msg) { PutSettings(msg, p, false); });
}

Status NbdNetlinkResize(int32_t index, uint64_t size_bytes, uint64_t block_size, const std::string& backend) {
  return NbdRequest(NBD_CMD_RECONFIGURE, "NBD_CMD_RECONFIGURE (size)", static_cast<uint32_t>(index),
                    [&](GenlMessage* msg) {
                      if (!backend.empty()) msg->PutString(NBD_ATTR_BACKEND_IDENTIFIER, backend);
                      // Both: the kernel takes a missing block size as its current one, but saying
                      // it keeps the request explicit (nbd_genl_size_set calls nbd_set_size only
                      // when either differs).
                      msg->PutU64(NBD_ATTR_SIZE_BYTES, size_bytes);
                      msg->PutU64(NBD_ATTR_BLOCK_SIZE_BYTES, block_size);
                    });
}

Status NbdNetlinkDisconnect(int32_t index) {
  return NbdRequest(NBD_CMD_DISCONNECT, "NBD_CMD_DISCONNECT", static_cast<uint32_t>(index), [](GenlMessage*) {});
}

}  // namespace dmkit
