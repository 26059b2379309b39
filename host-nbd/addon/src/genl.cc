// Generic netlink, by hand: the wire format is four small headers (nlmsghdr, genlmsghdr, nlattr,
// nlmsgerr), so a library would be more code to audit than this file.
#include "genl.h"

#include <errno.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

namespace dmkit {

namespace {

constexpr size_t Align4(size_t n) { return (n + 3) & ~size_t{3}; }
constexpr size_t kHeaderLen = NLMSG_HDRLEN + GENL_HDRLEN;

}  // namespace

GenlMessage::GenlMessage(uint16_t family, uint8_t cmd, uint8_t version) : buf_(kHeaderLen, 0) {
  nlmsghdr* nh = reinterpret_cast<nlmsghdr*>(buf_.data());
  nh->nlmsg_type = family;
  genlmsghdr* gh = reinterpret_cast<genlmsghdr*>(buf_.data() + NLMSG_HDRLEN);
  gh->cmd = cmd;
  gh->version = version;
}

void GenlMessage::Put(uint16_t type, const void* data, size_t len) {
  size_t at = buf_.size();
  buf_.resize(at + Align4(NLA_HDRLEN + len), 0);
  nlattr attr;
  attr.nla_len = static_cast<uint16_t>(NLA_HDRLEN + len);
  attr.nla_type = type;
  memcpy(buf_.data() + at, &attr, sizeof attr);
  if (len) memcpy(buf_.data() + at + NLA_HDRLEN, data, len);
}

void GenlMessage::PutU8(uint16_t type, uint8_t value) { Put(type, &value, sizeof value); }
void GenlMessage::PutU16(uint16_t type, uint16_t value) { Put(type, &value, sizeof value); }
void GenlMessage::PutU32(uint16_t type, uint32_t value) { Put(type, &value, sizeof value); }
void GenlMessage::PutU64(uint16_t type, uint64_t value) { Put(type, &value, sizeof value); }
void GenlMessage::PutString(uint16_t type, const std::string& value) {
  Put(type, value.c_str(), value.size() + 1);
}

size_t GenlMessage::BeginNested(uint16_t type) {
  size_t mark = buf_.size();
  Put(type | NLA_F_NESTED, nullptr, 0);
  return mark;
}

void GenlMessage::EndNested(size_t mark) {
  nlattr attr;
  memcpy(&attr, buf_.data() + mark, sizeof attr);
  attr.nla_len = static_cast<uint16_t>(buf_.size() - mark);
  memcpy(buf_.data() + mark, &attr, sizeof attr);
}

const std::vector<uint8_t>& GenlMessage::Finish(uint32_t seq, uint32_t port) {
  nlmsghdr* nh = reinterpret_cast<nlmsghdr*>(buf_.data());
  nh->nlmsg_len = static_cast<uint32_t>(buf_.size());
  nh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  nh->nlmsg_seq = seq;
  nh->nlmsg_pid = port;
  return buf_;
}

bool AttrView::Find(uint16_t type, AttrView* out) const {
  size_t at = 0;
  while (at + NLA_HDRLEN <= len) {
    nlattr attr;
    memcpy(&attr, data + at, sizeof attr);
    if (attr.nla_len < NLA_HDRLEN || at + attr.nla_len > len) return false;  // malformed: stop
    if ((attr.nla_type & NLA_TYPE_MASK) == type) {
      out->data = data + at + NLA_HDRLEN;
      out->len = attr.nla_len - NLA_HDRLEN;
      return true;
    }
    at += Align4(attr.nla_len);
  }
  return false;
}

bool AttrView::GetU32(uint16_t type, uint32_t* out) const {
  AttrView a;
  if (!Find(type, &a) || a.len < sizeof *out) return false;
  memcpy(out, a.data, sizeof *out);
  return true;
}

bool AttrView::GetU16(uint16_t type, uint16_t* out) const {
  AttrView a;
  if (!Find(type, &a) || a.len < sizeof *out) return false;
  memcpy(out, a.data, sizeof *out);
  return true;
}

GenlSocket::~GenlSocket() {
  if (fd_ >= 0) close(fd_);
}

Status GenlSocket::Open() {
  fd_ = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
  if (fd_ < 0) return Status::Fail(errno, "socket(AF_NETLINK, NETLINK_GENERIC)");
  sockaddr_nl addr{};
  addr.nl_family = AF_NETLINK;
  if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
    return Status::Fail(errno, "bind netlink socket");
  }
  socklen_t alen = sizeof addr;
  if (getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &alen) < 0) {
    return Status::Fail(errno, "getsockname netlink socket");
  }
  port_ = addr.nl_pid;
  return Status::Ok();
}

Status GenlSocket::Request(GenlMessage& msg, const std::string& what, std::vector<uint8_t>* reply) {
  const uint32_t seq = ++seq_;
  const std::vector<uint8_t>& out = msg.Finish(seq, port_);
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  ssize_t sent;
  do {
    sent = sendto(fd_, out.data(), out.size(), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) return Status::Fail(errno, what + " (send)");
  if (static_cast<size_t>(sent) != out.size()) return Status::Fail(EIO, what + " (short send)");

  // Replies come before the ack; one recv may hold several messages.
  std::vector<uint8_t> buf(1 << 16);
  for (;;) {
    ssize_t n;
    do {
      n = recv(fd_, buf.data(), buf.size(), 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return Status::Fail(errno, what + " (receive)");
    size_t left = static_cast<size_t>(n);
    for (nlmsghdr* nh = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(nh, left);
         nh = NLMSG_NEXT(nh, left)) {
      if (nh->nlmsg_seq != seq) continue;  // a late answer to an earlier request
      if (nh->nlmsg_type == NLMSG_ERROR) {
        if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) return Status::Fail(EPROTO, what + " (short ack)");
        const nlmsgerr* e = static_cast<const nlmsgerr*>(NLMSG_DATA(nh));
        if (e->error == 0) return Status::Ok();
        return Status::Fail(-e->error, what);
      }
      if (nh->nlmsg_type == NLMSG_DONE) return Status::Ok();
      if (nh->nlmsg_len < NLMSG_LENGTH(GENL_HDRLEN)) return Status::Fail(EPROTO, what + " (short reply)");
      if (reply) {
        const uint8_t* attrs = static_cast<const uint8_t*>(NLMSG_DATA(nh)) + GENL_HDRLEN;
        reply->assign(attrs, attrs + (nh->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN)));
      }
    }
  }
}

Status GenlSocket::ResolveFamily(const std::string& name, uint16_t* id) {
  GenlMessage msg(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1);
  msg.PutString(CTRL_ATTR_FAMILY_NAME, name);
  std::vector<uint8_t> reply;
  Status st = Request(msg, "resolve generic netlink family '" + name + "'", &reply);
  if (!st.ok()) return st;
  AttrView attrs{reply.data(), reply.size()};
  if (!attrs.GetU16(CTRL_ATTR_FAMILY_ID, id)) {
    return Status::Fail(EPROTO, "resolve generic netlink family '" + name + "' (no id in reply)");
  }
  return Status::Ok();
}

}  // namespace dmkit
