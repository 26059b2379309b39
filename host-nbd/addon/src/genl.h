// A minimal generic netlink client: build one request, send it, read its replies and its ack.
// Only what the nbd family needs (u32/u64/string attributes, one level of nesting); no libnl.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "status.h"

namespace dmkit {

// One generic netlink request under construction: nlmsghdr, genlmsghdr, then attributes.
class GenlMessage {
 public:
  GenlMessage(uint16_t family, uint8_t cmd, uint8_t version);

  void PutU8(uint16_t type, uint8_t value);
  void PutU16(uint16_t type, uint16_t value);
  void PutU32(uint16_t type, uint32_t value);
  void PutU64(uint16_t type, uint64_t value);
  void PutString(uint16_t type, const std::string& value);  // NUL-terminated, as the kernel wants
  // Nested attributes: Begin returns a mark that End needs to patch the length.
  size_t BeginNested(uint16_t type);
  void EndNested(size_t mark);

  // Sets the header's length, sequence number and flags; returns the bytes to send.
  const std::vector<uint8_t>& Finish(uint32_t seq, uint32_t port);

 private:
  void Put(uint16_t type, const void* data, size_t len);
  std::vector<uint8_t> buf_;
};

// A view of a run of netlink attributes.
struct AttrView {
  const uint8_t* data = nullptr;
  size_t len = 0;
  // Finds the first attribute of `type`; false if absent.
  bool Find(uint16_t type, AttrView* out) const;
  bool GetU32(uint16_t type, uint32_t* out) const;
  bool GetU16(uint16_t type, uint16_t* out) const;
};

// A NETLINK_GENERIC socket that sends one request at a time and waits for its ack.
class GenlSocket {
 public:
  GenlSocket() = default;
  GenlSocket(const GenlSocket&) = delete;
  GenlSocket& operator=(const GenlSocket&) = delete;
  ~GenlSocket();

  Status Open();
  // Resolves a family name to its id. ENOENT means the kernel has no such family (for "nbd":
  // the module is not loaded and could not be loaded on demand).
  Status ResolveFamily(const std::string& name, uint16_t* id);
  // Sends `msg` with NLM_F_ACK and waits for the ack. The attributes of the last reply message
  // (if any) are copied into *reply. A negative ack becomes Status{errno, what}.
  Status Request(GenlMessage& msg, const std::string& what, std::vector<uint8_t>* reply);

 private:
  int fd_ = -1;
  uint32_t port_ = 0;
  uint32_t seq_ = 0;
};

}  // namespace dmkit
