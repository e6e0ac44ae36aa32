#include "conntrack_codec.hpp"

#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <netinet/in.h>

#include <cstring>
#include <memory>

namespace tp {
namespace {

struct CtDeleter {
  void operator()(nf_conntrack* ct) const { nfct_destroy(ct); }
};

bool is_icmp(uint8_t proto) { return proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6; }

uint8_t echo_reply_type(uint8_t request) {
  return request == 8 ? 0 : request == 128 ? 129 : request;
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
    e.reply.sport = nfct_attr_is_set(c, ATTR_REPL_PORT_SRC)
                        ? nfct_get_attr_u16(c, ATTR_REPL_PORT_SRC)
                        : e.orig.sport;
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
