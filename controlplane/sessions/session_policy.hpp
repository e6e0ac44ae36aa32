// What the sessions' policies make of the uplinks, as pure logic: which uplinks a session's new
// connections take now, and the nftables rules that tell the kernel which session a new
// connection belongs to. The kernel then routes it (the session tables UplinkRouting writes), and
// the fast path follows the kernel's routing decision for the connection's mark like any other.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cgroup_paths.hpp"
#include "config.hpp"
#include "uplink_health.hpp"

namespace tp {

// What choosing needs to know of one uplink (its candidate's metric is not used).
struct SessionUplink {
  std::string name;
  conf::UplinkKind kind = conf::UplinkKind::ethernet;
  conf::Roaming roaming = conf::Roaming::home;
  UplinkCandidate now;
};

// The uplinks (indexes into `uplinks`) the session may use at all, whatever their health: its
// entries' uplinks that its roaming policy allows (none for a local session), in order of
// preference, each with its entry's rank.
struct AllowedUplink {
  std::size_t uplink = 0, rank = 0;
};
std::vector<AllowedUplink> allowed_uplinks(const conf::SessionConfig& s,
                                           const std::vector<SessionUplink>& uplinks);
// The same, as the uplinks' names.
std::set<std::string> allowed_uplink_names(const conf::SessionConfig& s,
                                           const std::vector<SessionUplink>& uplinks);

// The uplinks (indexes into `uplinks`) a session's new connections take: its entries in order
// of preference (an uplink's name, or a kind: all its uplinks, sharing by weight), each counting
// only the uplinks its roaming policy allows, chosen as choose_active chooses with the
// preference in place of the metric: the most preferred healthy ones, failing those degraded
// ones, failing those ones still held after an outage. Empty: none (a local session, an empty
// list, every allowed uplink down): its new connections are refused.
std::vector<std::size_t> session_route(const conf::SessionConfig& s,
                                       const std::vector<SessionUplink>& uplinks, SteadyTime now);

// One selector of one session, in the order the kernel tries them.
struct SessionSelector {
  enum Kind { mac, address, downstream, uid, gid, cgroup } kind;
  // As nft writes it: a MAC, a prefix, an interface name, a number; a cgroup's path.
  std::string text;
  int prefix_len = 0;
  std::size_t session = 0;
};

// Every session's selectors, most specific first (MACs, then longer prefixes, then downstream
// interfaces; for the box's own applications uids, then gids, then cgroups, deeper first), then
// by higher priority: the first that matches a client (an application) is its session.
std::vector<SessionSelector> ordered_selectors(const std::vector<conf::SessionConfig>& sessions);

// What the classifier marks: sessions (session i has mark slot slots[i], stable across updates,
// so that a running connection's mark keeps naming its session) and, with routing.mark_mask,
// the uplink each new connection leaves by (uplink i: value i + 1, as its P+1 rule expects).
struct ClassifierPlan {
  std::vector<conf::SessionConfig> sessions;
  std::vector<std::size_t> slots;
  uint32_t session_mask = 0;
  std::vector<std::string> uplink_ifaces;
  uint32_t uplink_mask = 0;
  // An active emergency session (its slot), and the cellular uplinks only it may cross.
  std::optional<std::size_t> emergency_slot;
  std::vector<std::string> cellular_ifaces;
  // Garage mode: the slots of the sessions a remote task runs for; nobody else's traffic crosses
  // the uplinks (`uplink_ifaces`). Empty optional: not in garage mode.
  std::optional<std::vector<std::size_t>> garage_slots;
  // Sessions whose data limit is reached (their slots): nothing of theirs is forwarded.
  std::vector<std::size_t> limited_slots;
  // The sessions' cgroups that exist now (a rule cannot name one that does not).
  std::map<std::string, CgroupRef> cgroups;
};

// The body of the `inet tetherpath_sessions` table (see session_classifier): a new connection's
// first packet takes the first matching selector's session into its conntrack mark, and its
// uplink once routed; every later packet of the connection in the original direction carries
// both into routing (replies go back to the client by the main table). Empty: nothing to mark.
std::string session_table(const ClassifierPlan& plan);

}  // namespace tp
