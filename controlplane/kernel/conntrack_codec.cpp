#include "conntrack_codec.hpp"

#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <netinet/in.h>

#include <cstring>
#include <memory>
#include <optional>

namespace tp {
namespace {

struct CtDeleter {
  void operator()(nf_conntrack* ct) const { nfct_destroy(ct); }
};

bool is_icmp(uint8_t proto) { return proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6; }

uint8_t echo_reply_type(uint8_t request) {
  return request == 8 ? 0 : request == 128 ? 129 : request;
}

// The attribute `type` among those in [begin, begin + len), or null.
const nlattr* find_attr(const void* begin, std::size_t len, uint16_t type) {
  auto* a = static_cast<const nlattr*>(begin);
  int left = static_cast<int>(len);
  for (; mnl_attr_ok(a, left); a = mnl_attr_next(a)) {
    if (mnl_attr_get_type(a) == type) return a;
    left -= static_cast<int>(MNL_ALIGN(a->nla_len));
  }
  return nullptr;
}

const nlattr* nested(const nlattr* parent, uint16_t type) {
  return find_attr(mnl_attr_get_payload(parent), mnl_attr_get_payload_len(parent), type);
}

// The reply tuple's ICMP identifier, read from the message itself: libnetfilter_conntrack keeps
// one ATTR_ICMP_ID for both tuples (the original's), but the kernel's NAT remaps it when two
// clients ping the same server with the same identifier, and then only the reply tuple says so.
std::optional<uint16_t> reply_icmp_id(const nlmsghdr* nlh) {
  const nlattr* reply =
      find_attr(mnl_nlmsg_get_payload_offset(nlh, sizeof(nfgenmsg)),
                nlh->nlmsg_len - MNL_NLMSG_HDRLEN - MNL_ALIGN(sizeof(nfgenmsg)), CTA_TUPLE_REPLY);
  const nlattr* proto = reply ? nested(reply, CTA_TUPLE_PROTO) : nullptr;
  if (!proto) return std::nullopt;
  for (const uint16_t type : {uint16_t{CTA_PROTO_ICMP_ID}, uint16_t{CTA_PROTO_ICMPV6_ID}})
    if (const nlattr* id = nested(proto, type); id && mnl_attr_get_payload_len(id) >= 2)
      return mnl_attr_get_u16(id);  // network order, as the tuple keeps ports
  return std::nullopt;
}

}  // namespace

bool parse_conntrack(const nlmsghdr* nlh, CtEntry& e) {
  std::unique_ptr<nf_conntrack, CtDeleter> ct(nfct_new());
  if (!ct || nfct_nlmsg_parse(nlh, ct.get()) < 0) return false;
  nf_conntrack* c = ct.get();
  e.family = nfct_get_attr_u8(c, ATTR_L3PROTO);
  e.proto = nfct_get_attr_u8(c, ATTR_L4PROTO);
  if (e.family == AF_INET) {
    e.orig.src = IpAddr::v4(nfct_get_attr_u32(c, ATTR_ORIG_IPV4_SRC));
    e.orig.dst = IpAddr::v4(nfct_get_attr_u32(c, ATTR_ORIG_IPV4_DST));
    e.reply.src = IpAddr::v4(nfct_get_attr_u32(c, ATTR_REPL_IPV4_SRC));
    e.reply.dst = IpAddr::v4(nfct_get_attr_u32(c, ATTR_REPL_IPV4_DST));
  } else if (e.family == AF_INET6) {
    e.orig.src = IpAddr::v6(nfct_get_attr(c, ATTR_ORIG_IPV6_SRC));
    e.orig.dst = IpAddr::v6(nfct_get_attr(c, ATTR_ORIG_IPV6_DST));
    e.reply.src = IpAddr::v6(nfct_get_attr(c, ATTR_REPL_IPV6_SRC));
    e.reply.dst = IpAddr::v6(nfct_get_attr(c, ATTR_REPL_IPV6_DST));
  } else {
    return false;
  }
  if (is_icmp(e.proto)) {
    // Echo: the identifier travels in the port slots, the type tells request from reply.
    const uint8_t type = nfct_get_attr_u8(c, ATTR_ICMP_TYPE);
    e.orig.sport = nfct_get_attr_u16(c, ATTR_ICMP_ID);
    e.orig.dport = htons(type);
    e.reply.sport = reply_icmp_id(nlh).value_or(e.orig.sport);
    e.reply.dport = htons(echo_reply_type(type));
  } else {
    e.orig.sport = nfct_get_attr_u16(c, ATTR_ORIG_PORT_SRC);
    e.orig.dport = nfct_get_attr_u16(c, ATTR_ORIG_PORT_DST);
    e.reply.sport = nfct_get_attr_u16(c, ATTR_REPL_PORT_SRC);
    e.reply.dport = nfct_get_attr_u16(c, ATTR_REPL_PORT_DST);
  }
  e.present = 0;
  if (nfct_attr_is_set(c, ATTR_STATUS)) {
    e.status = nfct_get_attr_u32(c, ATTR_STATUS);
    e.present |= CtEntry::kStatus;
  }
  if (nfct_attr_is_set(c, ATTR_TCP_STATE)) {
    e.tcp_state = nfct_get_attr_u8(c, ATTR_TCP_STATE);
    e.present |= CtEntry::kTcpState;
  }
  if (nfct_attr_is_set(c, ATTR_MARK)) {
    e.mark = nfct_get_attr_u32(c, ATTR_MARK);
    e.present |= CtEntry::kMark;
  }
  e.zone = nfct_attr_is_set(c, ATTR_ZONE) ? nfct_get_attr_u16(c, ATTR_ZONE) : 0;
  e.has_helper = nfct_attr_is_set(c, ATTR_HELPER_NAME) && nfct_get_attr(c, ATTR_HELPER_NAME) &&
                 static_cast<const char*>(nfct_get_attr(c, ATTR_HELPER_NAME))[0] != '\0';
  e.id = nfct_attr_is_set(c, ATTR_ID) ? nfct_get_attr_u32(c, ATTR_ID) : 0;
  e.timeout = nfct_attr_is_set(c, ATTR_TIMEOUT) ? nfct_get_attr_u32(c, ATTR_TIMEOUT) : 0;
  return true;
}

nf_conntrack* conntrack_for_update(const CtEntry& e) {
  nf_conntrack* c = nfct_new();
  if (!c) return nullptr;
  nfct_set_attr_u8(c, ATTR_L3PROTO, e.family);
  nfct_set_attr_u8(c, ATTR_L4PROTO, e.proto);
  if (e.family == AF_INET) {
    nfct_set_attr_u32(c, ATTR_ORIG_IPV4_SRC, e.orig.src.v4_be());
    nfct_set_attr_u32(c, ATTR_ORIG_IPV4_DST, e.orig.dst.v4_be());
  } else {
    nfct_set_attr(c, ATTR_ORIG_IPV6_SRC, e.orig.src.bytes.data());
    nfct_set_attr(c, ATTR_ORIG_IPV6_DST, e.orig.dst.bytes.data());
  }
  if (is_icmp(e.proto)) {
    nfct_set_attr_u8(c, ATTR_ICMP_TYPE, static_cast<uint8_t>(ntohs(e.orig.dport)));
    nfct_set_attr_u8(c, ATTR_ICMP_CODE, 0);
    nfct_set_attr_u16(c, ATTR_ICMP_ID, e.orig.sport);
  } else {
    nfct_set_attr_u16(c, ATTR_ORIG_PORT_SRC, e.orig.sport);
    nfct_set_attr_u16(c, ATTR_ORIG_PORT_DST, e.orig.dport);
  }
  if (e.zone) nfct_set_attr_u16(c, ATTR_ZONE, e.zone);
  return c;
}

}  // namespace tp
