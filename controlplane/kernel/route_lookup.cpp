#include "route_lookup.hpp"

#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

#include "netlink_attr.hpp"

namespace tp {

RouteLookup::RouteLookup() {
  sock_ = mnl_socket_open(NETLINK_ROUTE);
  if (!sock_ || mnl_socket_bind(sock_, 0, MNL_SOCKET_AUTOPID) < 0) {
    if (sock_) mnl_socket_close(sock_);
    throw std::runtime_error("rtnetlink: cannot open the route lookup socket: " +
                             std::string(std::strerror(errno)));
  }
  // Room for a batch's answers with margin (best effort: capped by net.core.rmem_max).
  const int rcvbuf = 1 << 20;
  ::setsockopt(mnl_socket_get_fd(sock_), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
}

RouteLookup::~RouteLookup() { mnl_socket_close(sock_); }

// The errors the kernel's input route lookup gives (fib_props, ip6_rt_type_to_error and
// fib_validate_source): each is what happens to the packet in the kernel, which the fast path
// must not undo by forwarding it.
std::string_view route_refusal(int err) {
  switch (-err) {
    case EINVAL:  // a blackhole route, or a source the martian / reverse-path checks drop
      return "route_dropped";
    case EHOSTUNREACH:
    case ENETUNREACH:
      return "route_unreachable";
    case EACCES:
      return "route_prohibit";
    default:
      return "route_lookup_failed";
  }
}

std::size_t RouteQueryHash::operator()(const RouteQuery& q) const {
  std::size_t h = IpAddrHash{}(q.src) * 31 + IpAddrHash{}(q.dst);
  h = h * 31 + static_cast<std::size_t>(q.iif);
  h = h * 31 + q.mark;
  return h * 31 + (std::size_t{q.proto} << 32 | std::size_t{q.sport} << 16 | q.dport);
}

std::size_t RouteLookup::encode(char* at, const RouteQuery& q, uint32_t seq) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(at);
  nlh->nlmsg_type = RTM_GETROUTE;
  nlh->nlmsg_flags = NLM_F_REQUEST;
  nlh->nlmsg_seq = seq;
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
  const bool v4 = q.dst.family == AF_INET;
  rtm->rtm_family = static_cast<unsigned char>(q.dst.family);
  rtm->rtm_dst_len = rtm->rtm_src_len = v4 ? 32 : 128;
  const std::size_t alen = v4 ? 4 : 16;
  mnl_attr_put(nlh, RTA_DST, alen, q.dst.bytes.data());
  mnl_attr_put(nlh, RTA_SRC, alen, q.src.bytes.data());
  mnl_attr_put_u32(nlh, RTA_IIF, static_cast<uint32_t>(q.iif));
  if (q.mark) mnl_attr_put_u32(nlh, RTA_MARK, q.mark);
  if (q.proto) mnl_attr_put_u8(nlh, RTA_IP_PROTO, q.proto);
  if (q.proto == IPPROTO_TCP || q.proto == IPPROTO_UDP) {
    mnl_attr_put_u16(nlh, RTA_SPORT, q.sport);
    mnl_attr_put_u16(nlh, RTA_DPORT, q.dport);
  }
  return nlh->nlmsg_len;
}

// The kernel's answer (a route, or an error) to the question `q`.
Forwarding RouteLookup::decode(const nlmsghdr* m, const RouteQuery& q) {
  if (m->nlmsg_type == NLMSG_ERROR) {
    const auto* e = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(m));
    return {route_refusal(e->error ? e->error : -EPROTO), {}};
  }
  const auto* r = static_cast<const rtmsg*>(mnl_nlmsg_get_payload(m));
  if (r->rtm_type == RTN_LOCAL) return {"route_local", {}};
  if (r->rtm_type != RTN_UNICAST) return {"route_not_unicast", {}};
  Forwarding f;
  f.route.next_hop = q.dst;
  uint32_t mtu = 0;
  bool mtu_locked = false, via = false;
  for_each_attr(m, sizeof(rtmsg), [&](const nlattr* a) {
    switch (mnl_attr_get_type(a)) {
      case RTA_OIF:
        f.route.oif = static_cast<int>(mnl_attr_get_u32(a));
        break;
      case RTA_GATEWAY:
        f.route.next_hop = addr_from(a, r->rtm_family);
        break;
      case RTA_VIA:  // a gateway of the other family (RFC 5549): not a neighbour we track
        via = true;
        break;
      case RTA_METRICS:
        for_each_nested(a, [&](const nlattr* x) {
          if (mnl_attr_get_type(x) == RTAX_MTU) mtu = mnl_attr_get_u32(x);
          if (mnl_attr_get_type(x) == RTAX_LOCK)
            mtu_locked = mnl_attr_get_u32(x) & (1u << RTAX_MTU);
        });
        break;
    }
  });
  if (via) return {"route_via_other_family", {}};
  if (f.route.oif == 0) return {"route_lookup_failed", {}};
  if (q.dst.family == AF_INET || mtu_locked)
    f.route.mtu = static_cast<uint16_t>(std::min(mtu, 65535u));
  return f;
}

Forwarding RouteLookup::forward(const RouteQuery& q) {
  if (auto it = fetched_.find(q); it != fetched_.end()) return it->second;
  if (collecting_) {
    wanted_.push_back(q);
    return {"route_lookup_pending", {}};
  }
  ++lookups;
  char buf[8192];  // one question or answer: a route message of a few attributes
  encode(buf, q, ++seq_);
  while (mnl_socket_sendto(sock_, buf, reinterpret_cast<nlmsghdr*>(buf)->nlmsg_len) < 0)
    if (errno != EINTR) return {"route_lookup_failed", {}};

  for (;;) {
    const ssize_t n = mnl_socket_recvfrom(sock_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return {"route_lookup_failed", {}};
    int left = static_cast<int>(n);
    for (auto* m = reinterpret_cast<const nlmsghdr*>(buf); mnl_nlmsg_ok(m, left);
         m = mnl_nlmsg_next(m, &left)) {
      if (m->nlmsg_seq != seq_) continue;  // an answer to an earlier, abandoned question
      if (m->nlmsg_type == NLMSG_ERROR || m->nlmsg_type == RTM_NEWROUTE) return decode(m, q);
    }
  }
}

// Batches small enough that every answer fits the socket's receive buffer at once (the kernel
// allocates a page per answer): a full buffer would lose answers, not delay them.
std::size_t RouteLookup::fetch() {
  constexpr std::size_t kBatch = 32;
  std::vector<RouteQuery> todo;
  todo.swap(wanted_);
  std::size_t fetched = 0;
  std::vector<char> out(kBatch * 128);
  char in[16384];
  for (std::size_t at = 0; at < todo.size(); at += kBatch) {
    const std::size_t n = std::min(kBatch, todo.size() - at);
    const uint32_t base = seq_ + 1;
    std::size_t len = 0;
    for (std::size_t i = 0; i < n; ++i) len += encode(out.data() + len, todo[at + i], base + i);
    seq_ += static_cast<uint32_t>(n);
    lookups += n;
    bool sent = false;
    while (!(sent = mnl_socket_sendto(sock_, out.data(), len) >= 0) && errno == EINTR) {
    }
    if (!sent) return fetched;  // what was not fetched is asked one by one
    std::size_t answered = 0;
    while (answered < n) {
      const ssize_t got = mnl_socket_recvfrom(sock_, in, sizeof in);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) return fetched;
      int left = static_cast<int>(got);
      for (auto* m = reinterpret_cast<const nlmsghdr*>(in); mnl_nlmsg_ok(m, left);
           m = mnl_nlmsg_next(m, &left)) {
        if (m->nlmsg_seq < base || m->nlmsg_seq >= base + n) continue;
        if (m->nlmsg_type != NLMSG_ERROR && m->nlmsg_type != RTM_NEWROUTE) continue;
        const RouteQuery& q = todo[at + (m->nlmsg_seq - base)];
        fetched_.emplace(q, decode(m, q));
        ++answered;
        ++fetched;
      }
    }
  }
  return fetched;
}

void RouteLookup::forget() {
  collecting_ = false;
  wanted_.clear();
  fetched_.clear();
}

}  // namespace tp
