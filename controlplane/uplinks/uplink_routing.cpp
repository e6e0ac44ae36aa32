#include "uplink_routing.hpp"

#include <libmnl/libmnl.h>
#include <linux/fib_rules.h>
#include <linux/rtnetlink.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace tp {

namespace {

std::string failed(const std::string& what, int err) { return what + ": " + std::strerror(-err); }

// The uplink's gateway of the family, if it has a way out of it at all.
std::optional<IpAddr> gateway_of(const ManagedUplink& u, int family) {
  if (family == AF_INET) return u.gateway4;
  if (!u.gateways6.empty()) return u.gateways6.front();
  return std::nullopt;
}

// IPv6 through an uplink without a gateway (a raw-IP modem): a route over the device, so that
// its prefixes' rule finds its own table, not the fall-through to another uplink.
bool routes_family(const ManagedUplink& u, int family) {
  return family == AF_INET ? u.addr4.has_value() : !u.gateways6.empty() || !u.prefixes6.empty();
}

}  // namespace

UplinkRouting::UplinkRouting() {
  sock_ = mnl_socket_open(NETLINK_ROUTE);
  if (!sock_ || mnl_socket_bind(sock_, 0, MNL_SOCKET_AUTOPID) < 0) {
    if (sock_) mnl_socket_close(sock_);
    throw std::runtime_error("rtnetlink: cannot open the routing socket: " +
                             std::string(std::strerror(errno)));
  }
}

UplinkRouting::~UplinkRouting() { mnl_socket_close(sock_); }

int UplinkRouting::call(nlmsghdr* nlh) {
  nlh->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
  nlh->nlmsg_seq = ++seq_;
  while (mnl_socket_sendto(sock_, nlh, nlh->nlmsg_len) < 0)
    if (errno != EINTR) return -errno;
  char buf[8192];  // an acknowledgement (with the request echoed on error)
  for (;;) {
    const ssize_t n = mnl_socket_recvfrom(sock_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? -errno : -EPROTO;
    int left = static_cast<int>(n);
    for (auto* m = reinterpret_cast<const nlmsghdr*>(buf); mnl_nlmsg_ok(m, left);
         m = mnl_nlmsg_next(m, &left))
      if (m->nlmsg_seq == seq_ && m->nlmsg_type == NLMSG_ERROR)
        return static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(m))->error;
  }
}

int UplinkRouting::rule(uint16_t type, int family, uint32_t priority, uint32_t table,
                        const std::optional<Prefix>& from, uint32_t mark, uint32_t mask,
                        bool suppress) {
  char buf[512];
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = type;
  if (type == RTM_NEWRULE) nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
  auto* r = static_cast<fib_rule_hdr*>(mnl_nlmsg_put_extra_header(nlh, sizeof(fib_rule_hdr)));
  r->family = static_cast<uint8_t>(family);
  mnl_attr_put_u32(nlh, FRA_PRIORITY, priority);
  // The selectors also pick the rule a delete takes (none: the first at that priority).
  if (type == RTM_NEWRULE) r->action = FR_ACT_TO_TBL;
  if (table) mnl_attr_put_u32(nlh, FRA_TABLE, table);
  if (from) {
    r->src_len = static_cast<uint8_t>(from->len);
    auto network = from->addr.bytes;  // host bits cleared, as `ip rule` would show them
    for (int b = from->len; b < from->addr.length() * 8; ++b)
      network[static_cast<std::size_t>(b / 8)] &= static_cast<uint8_t>(~(0x80u >> (b % 8)));
    mnl_attr_put(nlh, FRA_SRC, family == AF_INET ? 4 : 16, network.data());
  }
  if (mask) {
    mnl_attr_put_u32(nlh, FRA_FWMARK, mark);
    mnl_attr_put_u32(nlh, FRA_FWMASK, mask);
  }
  if (suppress) mnl_attr_put_u32(nlh, FRA_SUPPRESS_PREFIXLEN, 0);
  return call(nlh);
}

// One default route in `table` over `via` (several: a multipath route, shared by weight as the
// kernel hashes each connection), replacing the one there; none: the one there goes.
int UplinkRouting::default_route(uint16_t type, int family, uint32_t table,
                                 const std::vector<ManagedUplink>& via, uint8_t route_type) {
  char buf[4096];
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = type;
  if (type == RTM_NEWROUTE) nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE;
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
  rtm->rtm_family = static_cast<uint8_t>(family);
  rtm->rtm_table = RT_TABLE_UNSPEC;
  rtm->rtm_protocol = RTPROT_STATIC;
  rtm->rtm_type = route_type;
  rtm->rtm_scope = RT_SCOPE_UNIVERSE;
  mnl_attr_put_u32(nlh, RTA_TABLE, table);
  if (route_type != RTN_UNICAST) return call(nlh);  // unreachable, prohibit: no next hop
  const std::size_t alen = family == AF_INET ? 4 : 16;
  if (type == RTM_NEWROUTE && via.size() == 1) {
    const auto gw = gateway_of(via[0], family);
    if (gw)
      mnl_attr_put(nlh, RTA_GATEWAY, alen, gw->bytes.data());
    else
      rtm->rtm_scope = RT_SCOPE_LINK;  // a point-to-point uplink (raw IP modem): no gateway
    mnl_attr_put_u32(nlh, RTA_OIF, static_cast<uint32_t>(via[0].ifindex));
  } else if (type == RTM_NEWROUTE) {
    nlattr* nest = mnl_attr_nest_start(nlh, RTA_MULTIPATH);
    for (const ManagedUplink& u : via) {
      auto* nh = static_cast<rtnexthop*>(mnl_nlmsg_get_payload_tail(nlh));
      nlh->nlmsg_len += RTNH_ALIGN(sizeof(rtnexthop));
      std::memset(nh, 0, sizeof *nh);
      nh->rtnh_ifindex = u.ifindex;
      nh->rtnh_hops = static_cast<uint8_t>(u.weight - 1);  // the kernel's weight is hops + 1
      if (const auto gw = gateway_of(u, family))
        mnl_attr_put(nlh, RTA_GATEWAY, alen, gw->bytes.data());
      nh->rtnh_len = static_cast<unsigned short>(
          reinterpret_cast<char*>(mnl_nlmsg_get_payload_tail(nlh)) - reinterpret_cast<char*>(nh));
    }
    mnl_attr_nest_end(nlh, nest);
  }
  return call(nlh);
}

void UplinkRouting::delete_rules(bool keep_sessions) {
  if (!cfg_) return;
  for (int family : {AF_INET, AF_INET6})
    for (uint32_t p = cfg_->priority; p <= cfg_->priority + 5; ++p)
      for (int i = 0; i < 256 && !(keep_sessions && p == cfg_->priority + 3) &&
                      rule(RTM_DELRULE, family, p, 0, {}, 0, 0, false) == 0;
           ++i) {
      }
}

void UplinkRouting::delete_uplink_tables() {
  for (std::size_t i = 0; i <= tables_; ++i)
    for (int family : {AF_INET, AF_INET6})
      for (int n = 0; n < 16; ++n)
        if (default_route(RTM_DELROUTE, family, cfg_->table + static_cast<uint32_t>(i), {})) break;
  tables_ = 0;
}

std::vector<std::string> UplinkRouting::program(const conf::RoutingConfig& cfg,
                                                const std::vector<ManagedUplink>& uplinks,
                                                const std::set<std::size_t>& session_slots) {
  // What an earlier configuration made goes first (its tables, rules and priorities may differ);
  // what an earlier run made is replaced in place or deleted by priority. The sessions' rules
  // and tables stay when their numbers do: a link coming back must not open a moment in which
  // a session's connections fall through to uplinks its policy forbids.
  const bool keep_sessions = cfg_ && cfg_->table == cfg.table && cfg_->priority == cfg.priority &&
                             cfg_->session_mark_mask == cfg.session_mark_mask;
  if (keep_sessions) {
    delete_rules(true);
    delete_uplink_tables();
  } else {
    remove();
  }
  cfg_ = cfg;
  delete_rules(keep_sessions);
  std::vector<std::string> errors;
  const auto note = [&](const std::string& what, int err) {
    if (err) errors.push_back(failed(what, err));
  };
  tables_ = 0;
  for (std::size_t at = 0; at < uplinks.size(); ++at) {
    const ManagedUplink& u = uplinks[at];
    const std::size_t i = u.position.value_or(at);
    tables_ = std::max(tables_, i + 1);
    const uint32_t table = cfg.table + 1 + static_cast<uint32_t>(i);
    for (int family : {AF_INET, AF_INET6}) {
      if (!routes_family(u, family)) continue;
      const char* fam = family == AF_INET ? "IPv4" : "IPv6";
      note(u.name + ": " + fam + " default route in table " + std::to_string(table),
           default_route(RTM_NEWROUTE, family, table, {u}));
      if (cfg.mark_mask && !conf::mark_fits(i, cfg.mark_mask))
        note(u.name + ": mark rule", -ERANGE);  // more uplinks than routing.mark_mask has values
      else if (cfg.mark_mask)
        note(u.name + ": " + fam + " mark rule",
             rule(RTM_NEWRULE, family, cfg.priority + 1, table, {},
                  conf::mark_value(i, cfg.mark_mask), cfg.mark_mask, false));
    }
    // The box's own sockets bound to (or first routed with) an uplink's address leave by it;
    // not those a session marked (by socket owner or cgroup): the session routes them again,
    // and the masquerade gives them the address of the uplink they leave by.
    if (u.addr4)
      note(u.name + ": source rule", rule(RTM_NEWRULE, AF_INET, cfg.priority, table,
                                          Prefix{*u.addr4, 32}, 0, cfg.session_mark_mask, false));
    for (const Prefix& p : u.prefixes6)
      note(u.name + ": source rule for " + p.str(),
           rule(RTM_NEWRULE, AF_INET6, cfg.priority + 4, table, p, 0, 0, false));
  }
  for (int family : {AF_INET, AF_INET6}) {
    note("suppress rule",
         rule(RTM_NEWRULE, family, cfg.priority + 2, RT_TABLE_MAIN, {}, 0, 0, true));
    note("shared table rule",
         rule(RTM_NEWRULE, family, cfg.priority + 5, cfg.table, {}, 0, 0, false));
  }
  const auto more = program_sessions(session_slots);
  errors.insert(errors.end(), more.begin(), more.end());
  return errors;
}

std::vector<std::string> UplinkRouting::program_sessions(const std::set<std::size_t>& slots) {
  std::vector<std::string> errors;
  if (!cfg_) return errors;
  const auto note = [&](const std::string& what, int err) {
    if (err) errors.push_back(failed(what, err));
  };
  const uint32_t mask = cfg_->session_mark_mask;
  for (auto it = slots_.begin(); it != slots_.end();) {
    if (slots.count(*it)) {
      ++it;
      continue;
    }
    const uint32_t table = session_table(*cfg_, *it);
    for (int family : {AF_INET, AF_INET6}) {  // the rule first: nothing looks in the table then
      rule(RTM_DELRULE, family, cfg_->priority + 3, table, {}, conf::mark_value(*it, mask), mask,
           false);
      default_route(RTM_DELROUTE, family, table, {}, RTN_UNSPEC);
    }
    it = slots_.erase(it);
  }
  for (std::size_t slot : slots) {
    if (slots_.count(slot) || !mask) continue;
    if (!conf::mark_fits(slot, mask)) {
      note("session rule", -ERANGE);  // more sessions than session_mark_mask has values
      continue;
    }
    const uint32_t table = session_table(*cfg_, slot);
    // The table holds before the rule sends anything there.
    const auto held = hold_session_table(table);
    errors.insert(errors.end(), held.begin(), held.end());
    for (int family : {AF_INET, AF_INET6})
      note("session rule " + std::to_string(table),
           rule(RTM_NEWRULE, family, cfg_->priority + 3, table, {}, conf::mark_value(slot, mask),
                mask, false));
    slots_.insert(slot);
  }
  return errors;
}

std::vector<std::string> UplinkRouting::hold_session(std::size_t slot) {
  if (!cfg_ || !slots_.count(slot)) return {};
  return hold_session_table(session_table(*cfg_, slot));
}

std::vector<std::string> UplinkRouting::hold_session_table(uint32_t table) {
  std::vector<std::string> errors;
  for (int family : {AF_INET, AF_INET6})
    if (const int err = default_route(RTM_NEWROUTE, family, table, {}, RTN_BLACKHOLE))
      errors.push_back(failed("holding session table " + std::to_string(table), err));
  return errors;
}

std::vector<std::string> UplinkRouting::set_session(std::size_t slot,
                                                    const std::vector<ManagedUplink>& via,
                                                    bool local) {
  std::vector<std::string> errors;
  if (!cfg_ || !slots_.count(slot)) return errors;
  const uint32_t table = session_table(*cfg_, slot);
  for (int family : {AF_INET, AF_INET6}) {
    std::vector<ManagedUplink> by;
    for (const ManagedUplink& u : via)
      if (routes_family(u, family)) by.push_back(u);
    // Replacing keeps the table's one default route there throughout.
    const int err = by.empty() ? default_route(RTM_NEWROUTE, family, table, {},
                                               local ? RTN_PROHIBIT : RTN_UNREACHABLE)
                               : default_route(RTM_NEWROUTE, family, table, by);
    if (err)
      errors.push_back(failed(std::string(family == AF_INET ? "IPv4" : "IPv6") +
                                  " default route in session table " + std::to_string(table),
                              err));
  }
  return errors;
}

std::vector<std::string> UplinkRouting::set_active(const std::vector<ManagedUplink>& active) {
  std::vector<std::string> errors;
  if (!cfg_) return errors;
  for (int family : {AF_INET, AF_INET6}) {
    std::vector<ManagedUplink> via;
    for (const ManagedUplink& u : active)
      if (routes_family(u, family)) via.push_back(u);
    const int err = via.empty() ? default_route(RTM_DELROUTE, family, cfg_->table, {})
                                : default_route(RTM_NEWROUTE, family, cfg_->table, via);
    if (err && !(via.empty() && err == -ESRCH))
      errors.push_back(failed(std::string(family == AF_INET ? "IPv4" : "IPv6") +
                                  " default route in table " + std::to_string(cfg_->table),
                              err));
  }
  return errors;
}

int UplinkRouting::pin(const IpAddr& client, uint32_t table) {
  if (!cfg_) return -ENOENT;
  return rule(RTM_NEWRULE, client.family, cfg_->priority + 4, table,
              Prefix{client, client.length() * 8}, 0, 0, false);
}

int UplinkRouting::unpin(const IpAddr& client, uint32_t table) {
  if (!cfg_) return -ENOENT;
  return rule(RTM_DELRULE, client.family, cfg_->priority + 4, table,
              Prefix{client, client.length() * 8}, 0, 0, false);
}

void UplinkRouting::remove() {
  if (!cfg_) return;
  delete_rules(false);
  delete_uplink_tables();
  for (std::size_t slot : slots_)
    for (int family : {AF_INET, AF_INET6})
      default_route(RTM_DELROUTE, family, session_table(*cfg_, slot), {}, RTN_UNSPEC);
  cfg_.reset();
  slots_.clear();
}

}  // namespace tp
