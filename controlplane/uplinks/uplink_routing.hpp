// The kernel's policy routing for the uplinks tetherpath manages (routing.manage): what makes the
// kernel, the source of truth, send new connections where the uplinks' health says. The offload
// decision then follows the kernel as for any other routing (route_lookup).
//
//   table T+1+i   default via uplink i (its gateways), for whatever is pinned to it
//   table T       default spread over the uplinks taking new connections (multipath by weight)
//   rule P        from <uplink i's address> lookup T+1+i    (the box's own traffic on that uplink)
//   rule P+1      fwmark (i+1)<<shift/mask lookup T+1+i     (when routing.mark_mask is set)
//   rule P+2      lookup main suppress_prefixlength 0        (main's specific routes still win)
//   rule P+3      fwmark (j+1)<<shift/session_mark_mask lookup T+128+j (session slot j)
//   rule P+4      from <uplink i's IPv6 prefix> lookup T+1+i (sources only its network routes)
//   rule P+4      from <client> lookup T+1+i                (sticky mapping, while it lasts)
//   rule P+5      lookup T                                   (main's default route only after it)
//   table T+128+j default over the session's uplinks, or unreachable (prohibit: a local session;
//                 blackhole: held while an update applies)
//
// Clients' and sessions' rules come after main's specific routes: a client pinned to an uplink,
// or in a session, still reaches the box's other downstreams. A session's table always has a
// default route: its connections never fall through to uplinks its policy does not allow.
//
// Failover and failback only replace table T's default route: one atomic netlink message. The
// routes and rules stay when tetherpath exits (the kernel keeps forwarding through a restart);
// `manage: false` takes them away.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "config.hpp"

struct mnl_socket;
struct nlmsghdr;

namespace tp {

struct ManagedUplink {
  std::string name;
  int ifindex = 0;
  std::optional<IpAddr> addr4, gateway4;
  std::vector<IpAddr> gateways6;
  uint32_t weight = 1;
  std::vector<Prefix> prefixes6;
  // Its place among the configured uplinks (table T+1+position, mark position+1), kept while
  // an uplink before it is absent: running connections' marks keep naming it. Unset: its index
  // in the list given.
  std::optional<std::size_t> position;
};

class UplinkRouting {
 public:
  UplinkRouting();  // throws std::runtime_error without rtnetlink
  ~UplinkRouting();
  UplinkRouting(const UplinkRouting&) = delete;
  UplinkRouting& operator=(const UplinkRouting&) = delete;

  // Tables and rules for these uplinks (in this order: uplink i has table T+1+i) and these
  // sessions' slots (held until set_session). Errors, empty when the kernel took everything.
  std::vector<std::string> program(const conf::RoutingConfig& cfg,
                                   const std::vector<ManagedUplink>& uplinks,
                                   const std::set<std::size_t>& session_slots = {});
  // The sessions' slots now: new ones get their rule and a held table, gone ones lose both; the
  // others and every uplink rule stay as they are.
  std::vector<std::string> program_sessions(const std::set<std::size_t>& slots);
  // Table T's default routes over `active` (none: table T has no default, main's applies).
  std::vector<std::string> set_active(const std::vector<ManagedUplink>& active);
  // The session in `slot`: its new connections go over `via` (empty: refused, `local`: as
  // prohibited). hold_session: they are dropped unanswered (the client retransmits later) until
  // the next set_session.
  std::vector<std::string> set_session(std::size_t slot, const std::vector<ManagedUplink>& via,
                                       bool local);
  std::vector<std::string> hold_session(std::size_t slot);
  static uint32_t session_table(const conf::RoutingConfig& cfg, std::size_t j) {
    return cfg.table + 128 + static_cast<uint32_t>(j);
  }
  // Sticky mapping: the client's new connections go by `table` (an uplink's), or no longer.
  int pin(const IpAddr& client, uint32_t table);
  int unpin(const IpAddr& client, uint32_t table);
  // Everything program(), set_active() and pin() made.
  void remove();

 private:
  int call(nlmsghdr* nlh);  // 0 or -errno
  int rule(uint16_t type, int family, uint32_t priority, uint32_t table,
           const std::optional<Prefix>& from, uint32_t mark, uint32_t mask, bool suppress);
  int default_route(uint16_t type, int family, uint32_t table,
                    const std::vector<ManagedUplink>& via, uint8_t route_type = 1 /*unicast*/);
  void delete_rules(bool keep_sessions);  // all at P..P+5, or all but the sessions' (P+3)
  void delete_uplink_tables();
  std::vector<std::string> hold_session_table(uint32_t table);

  mnl_socket* sock_ = nullptr;
  uint32_t seq_ = 0;
  std::optional<conf::RoutingConfig> cfg_;  // as last programmed
  std::size_t tables_ = 0;                  // uplink tables programmed
  std::set<std::size_t> slots_;             // session tables and rules programmed
};

}  // namespace tp
