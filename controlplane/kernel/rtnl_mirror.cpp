#include "rtnl_mirror.hpp"

#include "link_type.hpp"
#include "netlink_attr.hpp"
#include "netlink_dump.hpp"

#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace tp {
namespace {

// Netlink datagrams are at most this large when we read them (libmnl suggests 8 KiB; dumps and
// event bursts come in bigger chunks on large pages).
constexpr std::size_t kNetlinkBuffer = 64 * 1024;

constexpr int kRcvBuf = 4 << 20;

// Neighbour states whose link-layer address can be used to send.
constexpr uint16_t kUsableNud =
    NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT | NUD_NOARP;

}  // namespace

RtnlMirror::RtnlMirror() {
  events_ = mnl_socket_open(NETLINK_ROUTE);
  query_ = mnl_socket_open(NETLINK_ROUTE);
  if (!events_ || !query_) throw std::runtime_error("rtnetlink: cannot open a socket");
  const unsigned groups = RTMGRP_LINK | RTMGRP_NEIGH | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE |
                          RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR;
  if (mnl_socket_bind(events_, groups, MNL_SOCKET_AUTOPID) < 0 ||
      mnl_socket_bind(query_, 0, MNL_SOCKET_AUTOPID) < 0)
    throw std::runtime_error("rtnetlink: cannot bind: " + std::string(std::strerror(errno)));
  // ip rules change where flows go as much as routes do (the legacy bind mask has no IPv6 rules).
  for (int group : {RTNLGRP_IPV4_RULE, RTNLGRP_IPV6_RULE})
    if (mnl_socket_setsockopt(events_, NETLINK_ADD_MEMBERSHIP, &group, sizeof group) < 0)
      throw std::runtime_error("rtnetlink: cannot follow ip rules: " +
                               std::string(std::strerror(errno)));
  const int fd = mnl_socket_get_fd(events_);
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &kRcvBuf, sizeof kRcvBuf);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  dump_all();
}

RtnlMirror::~RtnlMirror() {
  if (events_) mnl_socket_close(events_);
  if (query_) mnl_socket_close(query_);
}

int RtnlMirror::event_fd() const { return mnl_socket_get_fd(events_); }

// Every table again from scratch. A dump the kernel interrupted (the table changed meanwhile:
// NLM_F_DUMP_INTR) or that failed is not a picture of the kernel: all of them run again.
void RtnlMirror::dump_all() {
  constexpr int kAttempts = 5;
  for (int attempt = 1;; ++attempt) {
    routes_.clear();
    neighbours_.clear();
    addrs_.clear();
    local_.clear();
    links_.clear();
    link_states_.clear();
    DumpResult r = DumpResult::complete;
    for (auto [type, family] : {std::pair{RTM_GETLINK, AF_UNSPEC},
                                {RTM_GETADDR, AF_UNSPEC},
                                {RTM_GETROUTE, AF_INET},
                                {RTM_GETROUTE, AF_INET6},
                                {RTM_GETNEIGH, AF_UNSPEC}})
      if ((r = dump(type, family)) != DumpResult::complete) break;
    if (r == DumpResult::complete) break;
    ++dump_restarts;
    if (attempt == kAttempts)
      throw std::runtime_error("rtnetlink: no complete dump in " + std::to_string(kAttempts) +
                               " attempts: " + std::strerror(errno));
  }
  if (on_change) on_change();
}

// Synchronous dump on the query socket; used at start and after lost events.
DumpResult RtnlMirror::dump(int type, int family) {
  static char buf[kNetlinkBuffer];
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = static_cast<uint16_t>(type);
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  nlh->nlmsg_seq = ++seq_;
  auto* rt = static_cast<rtgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
  rt->rtgen_family = static_cast<unsigned char>(family);
  return netlink_dump(query_, nlh, buf, sizeof buf, [this](const nlmsghdr* m) { handle(m, true); });
}

void RtnlMirror::on_readable() {
  static char buf[kNetlinkBuffer];
  for (;;) {
    const ssize_t n = mnl_socket_recvfrom(events_, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) {  // events were lost: start over from a dump
        ++overruns;
        drain_socket(events_, buf, sizeof buf);  // older than the dump: not applied after it
        dump_all();
        continue;
      }
      return;  // EAGAIN: drained
    }
    auto cb = [](const nlmsghdr* m, void* self) {
      static_cast<RtnlMirror*>(self)->handle(m, false);
      return MNL_CB_OK;
    };
    mnl_cb_run(buf, static_cast<size_t>(n), 0, 0, cb, this);
  }
}

void RtnlMirror::handle(const nlmsghdr* nlh, bool from_dump) {
  if (!from_dump) ++events;
  bool changed = false;
  switch (nlh->nlmsg_type) {
    case RTM_NEWROUTE:
    case RTM_DELROUTE:
      // Every route message is a change, a repeated one too: the kernel drops routes without a
      // word (an IPv4 link or address going away, a blackhole in between), so a route that reads
      // as one the mirror still has may be one the kernel gave back. Routes change seldom; the
      // repetitions that came often were links, compared in handle_link.
      handle_route(nlh, nlh->nlmsg_type == RTM_NEWROUTE);
      changed = true;
      break;
    case RTM_NEWNEIGH:
    case RTM_DELNEIGH:
      handle_neigh(nlh, nlh->nlmsg_type == RTM_NEWNEIGH, from_dump);
      return;  // neighbour callbacks are precise; no general change
    case RTM_NEWADDR:
    case RTM_DELADDR:
      changed = handle_addr(nlh, nlh->nlmsg_type == RTM_NEWADDR);
      break;
    case RTM_NEWLINK:
    case RTM_DELLINK:
      changed = handle_link(nlh, nlh->nlmsg_type == RTM_NEWLINK);
      break;
    case RTM_NEWRULE:
    case RTM_DELRULE:
      changed = true;  // nothing mirrored: flows are decided again, with the kernel's own lookups
      break;
    default:
      return;
  }
  if (!from_dump && changed && on_change) on_change();
}

void RtnlMirror::handle_route(const nlmsghdr* nlh, bool add) {
  const auto* rtm = static_cast<const rtmsg*>(mnl_nlmsg_get_payload(nlh));
  Route r;
  r.len = rtm->rtm_dst_len;
  r.prefix.family = rtm->rtm_family;
  uint32_t table = rtm->rtm_table;
  for_each_attr(nlh, sizeof(rtmsg), [&](const nlattr* a) {
    switch (mnl_attr_get_type(a)) {
      case RTA_DST:
        r.prefix = addr_from(a, rtm->rtm_family);
        break;
      case RTA_OIF:
        r.oif = static_cast<int>(mnl_attr_get_u32(a));
        break;
      case RTA_GATEWAY:
        r.gateway = addr_from(a, rtm->rtm_family);
        break;
      case RTA_PRIORITY:
        r.priority = mnl_attr_get_u32(a);
        break;
      case RTA_TABLE:
        table = mnl_attr_get_u32(a);
        break;
      case RTA_METRICS:  // nested RTAX_* values
        for_each_nested(a, [&](const nlattr* m) {
          if (mnl_attr_get_type(m) == RTAX_MTU) r.mtu = mnl_attr_get_u32(m);
          if (mnl_attr_get_type(m) == RTAX_LOCK)
            r.mtu_locked = mnl_attr_get_u32(m) & (1u << RTAX_MTU);
        });
        break;
    }
  });
  // Other tables are not mirrored, but the kernel's lookups the flows are decided by see them.
  if (table != RT_TABLE_MAIN) return;
  const auto same_key = [&](const Route& x) {
    return x.prefix == r.prefix && x.len == r.len && x.priority == r.priority;
  };
  if (rtm->rtm_type != RTN_UNICAST) {
    // Not mirrored (blackhole, unreachable, local...); one added takes the place of the unicast
    // routes of its prefix and metric.
    if (add) std::erase_if(routes_, same_key);
    return;
  }
  // A replacement takes the place of every route of its prefix and metric, whatever their
  // device; an addition or a deletion is about the one by its device and gateway (the kernel
  // keeps routes that differ only by gateway: IPv4's appended ones, IPv6's from two routers).
  const bool replaces = add && (nlh->nlmsg_flags & NLM_F_REPLACE);
  for (auto it = routes_.begin(); it != routes_.end();) {
    if (same_key(*it) && (replaces || (it->oif == r.oif && it->gateway == r.gateway))) {
      it = routes_.erase(it);
      if (!replaces) break;
    } else {
      ++it;
    }
  }
  if (add) routes_.push_back(r);
}

void RtnlMirror::handle_neigh(const nlmsghdr* nlh, bool add, bool from_dump) {
  const auto* nd = static_cast<const ndmsg*>(mnl_nlmsg_get_payload(nlh));
  if (nd->ndm_family != AF_INET && nd->ndm_family != AF_INET6) return;
  std::optional<IpAddr> ip;
  std::optional<MacAddr> mac;
  for_each_attr(nlh, sizeof(ndmsg), [&](const nlattr* a) {
    if (mnl_attr_get_type(a) == NDA_DST) ip = addr_from(a, nd->ndm_family);
    if (mnl_attr_get_type(a) == NDA_LLADDR && mnl_attr_get_payload_len(a) == 6) {
      MacAddr m;
      std::memcpy(m.data(), mnl_attr_get_payload(a), 6);
      mac = m;
    }
  });
  if (!ip) return;
  const NeighKey key{nd->ndm_ifindex, *ip};
  const bool usable = add && mac && (nd->ndm_state & kUsableNud);
  auto it = neighbours_.find(key);
  std::optional<MacAddr> before;
  if (it != neighbours_.end()) before = it->second;
  if (usable)
    neighbours_[key] = *mac;
  else if (it != neighbours_.end())
    neighbours_.erase(it);
  const std::optional<MacAddr> after = usable ? mac : std::nullopt;
  if (!from_dump && before != after && on_neighbour) on_neighbour(key.ifindex, key.addr, after);
}

bool RtnlMirror::handle_addr(const nlmsghdr* nlh, bool add) {
  const auto* ifa = static_cast<const ifaddrmsg*>(mnl_nlmsg_get_payload(nlh));
  std::optional<IpAddr> ip;
  for_each_attr(nlh, sizeof(ifaddrmsg), [&](const nlattr* a) {
    // IFA_LOCAL is the interface's own address on point-to-point links; IFA_ADDRESS otherwise.
    if (mnl_attr_get_type(a) == IFA_LOCAL || (mnl_attr_get_type(a) == IFA_ADDRESS && !ip))
      ip = addr_from(a, ifa->ifa_family);
  });
  if (!ip) return false;
  const int idx = static_cast<int>(ifa->ifa_index);
  for (auto [it, end] = addrs_.equal_range(idx); it != end; ++it)
    if (it->second == *ip) {
      if (add) return false;  // known already (a refreshed lifetime)
      addrs_.erase(it);
      break;
    }
  if (add) {
    addrs_.emplace(idx, *ip);
    local_.insert(*ip);
  } else {
    local_.erase(*ip);
    for (const auto& [i, other] : addrs_)
      if (other == *ip) local_.insert(other);
  }
  return true;
}

bool RtnlMirror::handle_link(const nlmsghdr* nlh, bool add) {
  const auto* ifi = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
  // A family's own view of the link (IPv6's, a bridge port's) is not the link's description:
  // counted as a change, as before, and not compared.
  if (ifi->ifi_family != AF_UNSPEC) return true;
  const int idx = ifi->ifi_index;
  // Some senders give only a few attributes (a wireless event: the name and its payload): what a
  // message leaves out stays as it was.
  const auto known = link_states_.find(idx);
  LinkState st = known != link_states_.end() ? known->second : LinkState{};
  st.type = ifi->ifi_type;
  st.flags = ifi->ifi_flags;
  bool full = false, has_master = false;  // the kernel's full description always has the MTU
  for_each_attr(nlh, sizeof(ifinfomsg), [&](const nlattr* a) {
    switch (mnl_attr_get_type(a)) {
      case IFLA_IFNAME:
        st.name = mnl_attr_get_str(a);
        break;
      case IFLA_ADDRESS:
        st.lladdr.assign(static_cast<const char*>(mnl_attr_get_payload(a)),
                         mnl_attr_get_payload_len(a));
        break;
      case IFLA_MTU:
        st.mtu = mnl_attr_get_u32(a);
        full = true;
        break;
      case IFLA_MASTER:
        st.master = mnl_attr_get_u32(a);
        has_master = true;
        break;
      case IFLA_OPERSTATE:
        st.operstate = mnl_attr_get_u8(a);
        break;
    }
  });
  if (full && !has_master) st.master = 0;  // it left its bridge or VRF
  if (add && known != link_states_.end() && known->second == st) return false;
  // A link going down takes its IPv4 routes with it and says nothing of them (IPv6 says); a
  // link deleted takes every route.
  if (!add || !(st.flags & IFF_UP))
    std::erase_if(routes_, [&](const Route& r) {
      return r.oif == idx && (!add || r.prefix.family == AF_INET);
    });
  if (known != link_states_.end()) {
    links_.erase(known->second.name);  // a rename leaves no stale name behind
    link_states_.erase(known);
  }
  if (add && is_rawip_link(ifi->ifi_type))
    rawip_links_.insert(idx);
  else
    rawip_links_.erase(idx);
  if (add) {
    if (!st.name.empty()) links_[st.name] = idx;
    link_states_[idx] = st;
  } else if (!st.name.empty()) {
    links_.erase(st.name);
  }
  return true;
}

std::optional<RouteResult> RtnlMirror::route(const IpAddr& dst) const {
  const Route* best = nullptr;
  for (const Route& r : routes_) {
    if (r.prefix.family != dst.family || !dst.in(r.prefix, r.len)) continue;
    if (!best || r.len > best->len || (r.len == best->len && r.priority < best->priority))
      best = &r;
  }
  if (!best || best->oif == 0) return std::nullopt;
  const bool forwards_by_it = dst.family == AF_INET || best->mtu_locked;
  return RouteResult{best->oif, best->gateway.value_or(dst),
                     static_cast<uint16_t>(forwards_by_it ? std::min(best->mtu, 65535u) : 0)};
}

std::optional<MacAddr> RtnlMirror::neighbour(int ifindex, const IpAddr& addr) const {
  if (rawip_links_.count(ifindex)) return MacAddr{};
  auto it = neighbours_.find({ifindex, addr});
  if (it == neighbours_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::pair<IpAddr, MacAddr>> RtnlMirror::neighbours_of(int ifindex) const {
  std::vector<std::pair<IpAddr, MacAddr>> out;
  for (auto it = neighbours_.lower_bound({ifindex, IpAddr{}});
       it != neighbours_.end() && it->first.ifindex == ifindex; ++it)
    out.emplace_back(it->first.addr, it->second);
  return out;
}

bool RtnlMirror::has_address(int ifindex, const IpAddr& addr) const {
  for (auto [it, end] = addrs_.equal_range(ifindex); it != end; ++it)
    if (it->second == addr) return true;
  return false;
}

std::vector<IpAddr> RtnlMirror::addresses_of(int ifindex) const {
  std::vector<IpAddr> out;
  for (auto [it, end] = addrs_.equal_range(ifindex); it != end; ++it) out.push_back(it->second);
  return out;
}

int RtnlMirror::ifindex(const std::string& name) const {
  auto it = links_.find(name);
  return it == links_.end() ? 0 : it->second;
}

}  // namespace tp
