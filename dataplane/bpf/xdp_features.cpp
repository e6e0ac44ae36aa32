#include "xdp_features.hpp"

#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

namespace tp {
namespace {

// <linux/netdev.h> is newer than Debian 12's kernel headers: the values of its UAPI.
constexpr uint8_t kNetdevCmdDevGet = 1;
constexpr uint16_t kNetdevAttrIfindex = 1;
constexpr uint16_t kNetdevAttrXdpFeatures = 3;
constexpr uint64_t kXdpActNdoXmit = 4;

class Socket {
 public:
  Socket() : fd_(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC)) {}
  ~Socket() {
    if (fd_ >= 0) close(fd_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

struct Request {
  nlmsghdr nh;
  genlmsghdr gh;
  alignas(NLA_ALIGNTO) char attrs[64];
};

void put_attr(Request& r, uint16_t type, const void* data, uint16_t len) {
  auto* a = reinterpret_cast<nlattr*>(reinterpret_cast<char*>(&r) + NLMSG_ALIGN(r.nh.nlmsg_len));
  a->nla_type = type;
  a->nla_len = static_cast<uint16_t>(NLA_HDRLEN + len);
  std::memcpy(reinterpret_cast<char*>(a) + NLA_HDRLEN, data, len);
  r.nh.nlmsg_len = NLMSG_ALIGN(r.nh.nlmsg_len) + NLA_ALIGN(a->nla_len);
}

// One request, one answer: the attributes of the answer, or -errno.
int transact(const Socket& s, Request& req, char* buf, size_t size, const char** attrs,
             size_t* attrs_len) {
  if (send(s.fd(), &req, req.nh.nlmsg_len, 0) < 0) return -errno;
  const ssize_t n = recv(s.fd(), buf, size, 0);
  if (n < 0) return -errno;
  auto* nh = reinterpret_cast<nlmsghdr*>(buf);
  if (!NLMSG_OK(nh, static_cast<uint32_t>(n))) return -EBADMSG;
  if (nh->nlmsg_type == NLMSG_ERROR) {
    const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(nh));
    return e->error ? e->error : -EBADMSG;
  }
  *attrs = static_cast<const char*>(NLMSG_DATA(nh)) + GENL_HDRLEN;
  *attrs_len = nh->nlmsg_len - NLMSG_HDRLEN - GENL_HDRLEN;
  return 0;
}

const nlattr* find_attr(const char* attrs, size_t len, uint16_t type) {
  size_t off = 0;
  while (off + NLA_HDRLEN <= len) {
    const auto* a = reinterpret_cast<const nlattr*>(attrs + off);
    if (a->nla_len < NLA_HDRLEN || off + a->nla_len > len) return nullptr;
    if ((a->nla_type & NLA_TYPE_MASK) == type) return a;
    off += NLA_ALIGN(a->nla_len);
  }
  return nullptr;
}

}  // namespace

XdpTarget xdp_redirect_target(int ifindex, std::string& why) {
  Socket s;
  if (s.fd() < 0) {
    why = std::string("generic netlink socket: ") + std::strerror(errno);
    return XdpTarget::unknown;
  }
  alignas(NLMSG_ALIGNTO) char buf[4096];
  const char* attrs;
  size_t len;

  Request req{};
  req.nh.nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN);
  req.nh.nlmsg_type = GENL_ID_CTRL;
  req.nh.nlmsg_flags = NLM_F_REQUEST;
  req.gh.cmd = CTRL_CMD_GETFAMILY;
  req.gh.version = 1;
  put_attr(req, CTRL_ATTR_FAMILY_NAME, "netdev", 7);
  int err = transact(s, req, buf, sizeof(buf), &attrs, &len);
  const nlattr* id = err ? nullptr : find_attr(attrs, len, CTRL_ATTR_FAMILY_ID);
  if (!id) {
    why =
        "the kernel has no netdev netlink family (Linux 6.3+), so it cannot say whether the "
        "device takes redirected XDP frames";
    return XdpTarget::unknown;
  }
  uint16_t family;
  std::memcpy(&family, reinterpret_cast<const char*>(id) + NLA_HDRLEN, 2);

  req = Request{};
  req.nh.nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN);
  req.nh.nlmsg_type = family;
  req.nh.nlmsg_flags = NLM_F_REQUEST;
  req.gh.cmd = kNetdevCmdDevGet;
  req.gh.version = 1;
  const uint32_t idx = static_cast<uint32_t>(ifindex);
  put_attr(req, kNetdevAttrIfindex, &idx, 4);
  err = transact(s, req, buf, sizeof(buf), &attrs, &len);
  const nlattr* f = err ? nullptr : find_attr(attrs, len, kNetdevAttrXdpFeatures);
  if (!f || f->nla_len < NLA_HDRLEN + 8) {
    why = "netdev dev-get of ifindex " + std::to_string(ifindex) + ": " +
          (err ? std::strerror(-err) : "no xdp-features attribute");
    return XdpTarget::unknown;
  }
  uint64_t features;
  std::memcpy(&features, reinterpret_cast<const char*>(f) + NLA_HDRLEN, 8);
  if (features & kXdpActNdoXmit) {
    why = "the device takes redirected XDP frames";
    return XdpTarget::yes;
  }
  why =
      "the device does not take redirected XDP frames (no ndo_xdp_xmit; a veth needs GRO on "
      "its peer or an XDP program there)";
  return XdpTarget::no;
}

}  // namespace tp
