// tetherpath's configuration: the YAML schema as C++ types, and a loader whose every error names
// the file, line, column and key and says what was expected. Loading never changes anything that
// runs: the caller gets a complete Config or a ConfigError.
#pragma once

#include <bit>

#include <array>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "ip_addr.hpp"

namespace tp::conf {

struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class Role { upstream, downstream };

// Which engine forwards: DPDK's poll-mode workers behind TAPs, or the kernel's own receive path
// (tc/XDP programs on the box's interfaces). One per box: a flow crossing from one engine to the
// other would go through the kernel anyway.
enum class Engine { dpdk, kernel };
// A kernel-engine port's hook. automatic: native XDP where the port and the ports it forwards to
// take XDP redirects, tc otherwise (and always tc on a raw-IP device).
enum class Hook { automatic, xdp, tc };

struct PortConfig {
  // DPDK: the kernel-visible name of its TAP (modem0, wifi0, usb0). Kernel engine: the existing
  // kernel interface the port is.
  std::string name;
  Role role = Role::downstream;
  std::string device;           // DPDK: a PCI address or a vdev string (net_af_packet0,iface=eth1)
  Hook hook = Hook::automatic;  // kernel engine only
  uint16_t queues = 1;
  uint16_t mtu = 1500;
  std::optional<std::array<uint8_t, 6>> mac;  // default: the device's own
  // set_interface_enabled's last word on this port survives restarts (state_dir): a port an
  // application switched off stays off at the next ignition.
  bool persist_enabled = false;
  bool operator==(const PortConfig&) const = default;
};

enum class Hugepages { automatic, on, off };

struct DataplaneConfig {
  Engine engine = Engine::dpdk;
  unsigned main_lcore = 0;
  std::vector<unsigned> worker_lcores = {1};
  uint16_t burst = 32;
  unsigned memory_mb = 512;
  Hugepages hugepages = Hugepages::automatic;
  uint32_t flow_capacity = 65536;  // flows (two directions each)
  uint32_t idle_sleep_max_us = 900;
  uint32_t exception_ring_size = 4096;
  bool operator==(const DataplaneConfig&) const = default;
};

// How IPv6 is offloaded: from conntrack entries like IPv4, or, for kernels that do not track
// IPv6, from the neighbours on downstream ports (client address rules, Android's way).
enum class Ipv6Mode { conntrack, neighbours };

struct OffloadConfig {
  bool enabled = true;
  Ipv6Mode ipv6 = Ipv6Mode::conntrack;
  bool tcp = true, udp = true, icmp = true;
  uint32_t keepalive_interval_s = 60;
  // Flows whose conntrack mark matches (mark & mask == value) stay in the kernel; mask 0: off.
  uint32_t no_offload_mark = 0;
  uint32_t no_offload_mask = 0;
  uint32_t route_mark_mask = 0;  // conntrack mark bits restored into packet marks before routing
  uint32_t conntrack_rcvbuf_kb = 4096;
  uint32_t conntrack_rcvbuf_max_kb = 65536;
};

// What the connection manager would say with set_upstream, applied at start.
struct UpstreamConfig {
  std::string iface;
  std::optional<IpAddr> ipv4_addr, ipv4_gateway;
  std::vector<IpAddr> ipv6_gateways;
  bool operator==(const UpstreamConfig&) const = default;
};

// Multi-uplink mode: uplinks active at once next to set_upstream's single one, each with what
// the connection manager knows of it (oFono/ModemManager report roaming). Which uplink a flow
// takes is the kernel's routing decision; tetherpath follows it (offload_policy).
enum class UplinkKind { cellular, wifi, ethernet, usb, bluetooth };
enum class Roaming { home, national, international };
// ping: ICMP echo to any address beyond the uplink; arp: ARP requests to IPv4 neighbours on the
// uplink's link (its gateway), for networks that filter ICMP.
enum class TrackMethod { ping, arp };

// Health tracking of one uplink, as mwan3track does it: each round probes every target over the
// uplink's interface (`method`); a round fails when fewer than `reliability` targets answer within
// `timeout_ms`. `down` failed rounds in a row take the uplink down, `up` healthy rounds in a row
// bring it back; rounds that pass but lose more than `max_loss_pct` of the last ten probes per
// target, or average more than `max_rtt_ms` (0: no bound), make it degraded.
struct TrackConfig {
  std::vector<IpAddr> targets;  // empty: link state only
  TrackMethod method = TrackMethod::ping;
  uint32_t interval_ms = 1000;
  uint32_t timeout_ms = 1000;
  uint32_t reliability = 1;
  uint32_t down = 3;
  uint32_t up = 3;
  uint32_t max_loss_pct = 20;
  uint32_t max_rtt_ms = 0;
  bool operator==(const TrackConfig&) const = default;
};

struct UplinkConfig {
  std::string name;
  std::string iface;
  UplinkKind kind = UplinkKind::ethernet;
  bool metered = false;
  Roaming roaming = Roaming::home;
  uint32_t metric = 100;  // lower is preferred
  uint32_t weight = 1;    // share among uplinks of equal metric
  std::optional<IpAddr> ipv4_addr, ipv4_gateway;
  std::vector<IpAddr> ipv6_gateways;
  // IPv6 sources this uplink's network routes (its addresses' prefix, the prefix it delegated to
  // the downstreams): with routing.manage, packets from them leave by this uplink only, as any
  // other uplink's network would drop them (BCP 38).
  std::vector<Prefix> ipv6_prefixes;
  TrackConfig track;
  bool operator==(const UplinkConfig&) const = default;
};

// The names of the kinds and roaming states, shared by the YAML and the API.
const std::vector<std::pair<const char*, UplinkKind>>& uplink_kinds();
const std::vector<std::pair<const char*, Roaming>>& roaming_states();
const std::vector<std::pair<const char*, TrackMethod>>& track_methods();
// Why `p` cannot be an uplink's ipv6_prefixes entry (empty: it can): IPv6, /16 or longer, global
// unicast (2000::/3) or unique local (fc00::/7); never link-local, multicast or IPv4-mapped, whose
// traffic is no uplink's.
std::string bad_uplink_prefix(const Prefix& p);
// 1 to 32 of [A-Za-z0-9_-]: it names metrics labels, events and routing tables' comments.
bool valid_uplink_name(const std::string& name);
std::string to_string(UplinkKind k);
std::string to_string(Roaming r);
std::string to_string(TrackMethod m);

// The kernel's policy routing for the uplinks, programmed by tetherpath when `manage` is on: a
// table per uplink (`table` + 1 + its position) with its default routes, a shared table `table`
// whose default route spreads new connections over the healthy uplinks of the lowest metric by
// weight, the rules that consult them (priorities `priority` to `priority` + 5), and masquerade
// out of every uplink; a table per session (`table` + 128 + its mark slot) and its rule at
// `priority` + 3. `mark_mask` (0: none) holds the packet-mark bits that pin a connection to
// one uplink (uplink i: value i + 1 in those bits); they must not overlap the integrator's.
struct RoutingConfig {
  bool manage = false;
  uint32_t table = 1000;
  uint32_t priority = 1000;
  uint32_t mark_mask = 0;
  bool masquerade = true;
  uint32_t failback_s = 30;  // healthy this long before a recovered uplink takes new connections
  // Sticky mapping: a client's new connections keep the uplink of its last one for this long
  // (0: off; each connection goes where the kernel's multipath hash sends it).
  uint32_t sticky_s = 0;
  // The packet-mark bits that carry a connection's session (session j: value j + 1), kept in
  // its conntrack mark; required by `sessions`, must not overlap any other mark.
  uint32_t session_mark_mask = 0;
  bool operator==(const RoutingConfig&) const = default;
};

// Uplink i's mark is (i + 1) << mark_shift(mask); so is session slot j's in session_mark_mask.
inline int mark_shift(uint32_t mask) { return mask ? std::countr_zero(mask) : 0; }
// How many values (slots) a mask holds, slot j's value, and whether the mask has room for it.
inline uint32_t mark_values(uint32_t mask) { return mask >> mark_shift(mask); }
inline uint32_t mark_value(std::size_t j, uint32_t mask) {
  return static_cast<uint32_t>(j + 1) << mark_shift(mask);
}
inline bool mark_fits(std::size_t j, uint32_t mask) {
  return ((static_cast<uint64_t>(j + 1) << mark_shift(mask)) & ~uint64_t{mask}) == 0;
}

// Sessions, ConnMan's model for the tethered clients: a named policy for the clients its
// selectors match. Where several sessions match a client, the most specific selector wins (a MAC,
// then the longest address prefix, then a downstream interface), then the higher priority; two
// sessions with the same selector and priority are refused. Clients no session matches take the
// uplinks as routing decides for everyone.
enum class Connection { internet, local };  // local: the box's networks only, never an uplink
// Which roaming states of an uplink a session may use: forbidden (home only), national (home or
// national), international and always (any).
enum class RoamingPolicy { forbidden, national, international, always };
// A running connection on an uplink the session may no longer use (a policy update, roaming):
// reset tears it down at once (its conntrack entry goes); keep lets it run while that uplink
// lives (routing.mark_mask: the connection's uplink is in its mark, and routes it).
enum class ExistingFlows { reset, keep };

struct SessionMatch {
  std::vector<std::array<uint8_t, 6>> macs;
  std::vector<Prefix> addresses;
  std::vector<std::string> downstreams;  // downstream ports
  // The box's own applications (local traffic, marked in the output hook): socket owners.
  std::vector<uint32_t> uids, gids;
  // ...and their cgroups (cgroup2), as paths below its root: "system.slice/ota.service".
  std::vector<std::string> cgroups;
  bool local() const { return !uids.empty() || !gids.empty() || !cgroups.empty(); }
  std::size_t size() const {
    return macs.size() + addresses.size() + downstreams.size() + uids.size() + gids.size() +
           cgroups.size();
  }
  bool operator==(const SessionMatch&) const = default;
};

struct SessionConfig {
  std::string name;
  SessionMatch match;
  // Uplink names or kinds (cellular, wifi...), most preferred first; several uplinks under one
  // entry (a kind) share connections by weight. Empty: never online.
  std::vector<std::string> uplinks;
  Connection connection = Connection::internet;
  int32_t priority = 0;
  RoamingPolicy roaming = RoamingPolicy::always;
  ExistingFlows existing_flows = ExistingFlows::reset;
  // The integrator's word that this session is the emergency call's: only such a session may be
  // made active as the emergency (the API's set_emergency), and then only its traffic crosses the
  // cellular uplinks.
  bool emergency = false;
  // The session's own data warning (an event) and limit (its forwarding stops), IP bytes of its
  // clients both ways over every uplink, counted from when they were set (docs/sessions.md).
  std::optional<uint64_t> warning_bytes, limit_bytes;
  bool operator==(const SessionConfig&) const = default;
};

inline constexpr uint64_t kMaxSessionBytes = uint64_t{1} << 60;
const std::vector<std::pair<const char*, Connection>>& connections();
const std::vector<std::pair<const char*, RoamingPolicy>>& roaming_policies();
const std::vector<std::pair<const char*, ExistingFlows>>& existing_flows_choices();
std::string to_string(ExistingFlows e);
std::string mac_string(const std::array<uint8_t, 6>& mac);  // 02:00:00:00:00:01
// A user (group: a group) by number or by name on this system, or nothing.
std::optional<uint32_t> parse_owner(const std::string& text, bool group);
// A cgroup path a session may name (relative to the cgroup2 root, no "." or ".." parts, only
// the characters unit names use): empty, or why not.
std::string cgroup_path_refusal(const std::string& path);
// "02:00:00:00:00:01", or nothing.
std::optional<std::array<uint8_t, 6>> parse_mac_text(const std::string& text);
std::string to_string(Connection c);
std::string to_string(RoamingPolicy r);
// The checks the YAML and the API share (empty: fine). An entry of a session's `uplinks`: a
// configured uplink's name or a kind.
std::string session_uplink_refusal(const std::string& entry,
                                   const std::vector<UplinkConfig>& uplinks);
// A data warning or limit on a session that also selects the box's own applications: they count
// forwarded traffic, and the box's own is local.
std::string session_quota_refusal(const SessionConfig& s);
// Another session (by another name) with a selector of `s` and the same priority.
std::string session_conflict(const SessionConfig& s, const std::vector<SessionConfig>& others);
// `sessions` sessions under this routing configuration.
std::string session_room_refusal(std::size_t sessions, const RoutingConfig& routing);
// Whether a session under `policy` may use an uplink in roaming state `state`.
bool roaming_allows(RoamingPolicy policy, Roaming state);

struct DownstreamConfig {
  std::string iface;
  Prefix prefix;
  bool operator==(const DownstreamConfig&) const = default;
};

struct LimitConfig {
  std::string iface;  // an upstream port
  uint64_t warning_bytes = 0;
  uint64_t limit_bytes = 0;
  bool operator==(const LimitConfig&) const = default;
};

struct LimitsConfig {
  uint32_t persist_interval_s = 10;  // a crash loses at most this much accounting
  std::vector<LimitConfig> upstreams;
  bool operator==(const LimitsConfig&) const = default;
};

// The kernel engine's programs and maps are pinned under <bpffs>/tetherpath/v<layout>, so that a
// restarted daemon finds them and forwarding never stops while it is away.
struct KernelEngineConfig {
  std::string bpffs = "/sys/fs/bpf";
  // A clean stop leaves the programs attached and pinned (they keep forwarding, bounded by the
  // heartbeat) instead of handing everything back to the kernel.
  bool keep_forwarding_on_exit = false;
  bool operator==(const KernelEngineConfig&) const = default;
};

struct ApiConfig {
  std::string socket;  // default: <run_dir>/api.sock
  std::string group;   // callers in this group may use it; empty: root only
  // Of those, who may change anything (empty: all of them) and who may start or end an emergency
  // (empty: root, the integrator, only). Others may read: status, flows, counters, events.
  std::string control_group, emergency_group;
  uint32_t mode = 0660;
  uint32_t max_clients = 32;
  uint32_t max_subscribers = 8;  // of max_clients, how many may hold an event stream
  uint32_t idle_timeout_s = 30;  // a client that neither sends nor reads is closed; 0: never
  bool operator==(const ApiConfig&) const = default;
};

struct MetricsConfig {
  bool enabled = true;
  IpAddr address = *IpAddr::parse("127.0.0.1");  // loopback only
  uint16_t port = 9464;
  uint32_t max_connections = 8;  // beyond it, new scrapes wait in the listen backlog
  bool operator==(const MetricsConfig&) const = default;
};

// The vehicle's power manager's states (docs/configuration.md, "vehicle").
struct VehicleConfig {
  // Garage mode (a remote task, e.g. an overnight update): only these sessions' clients are
  // forwarded; the others' new connections are refused, their running ones held.
  std::vector<std::string> garage_sessions;
  // The kernel's silent-mode file (Android Automotive: "1" silent, "0" not), watched; empty: none.
  std::string silent_file = "/sys/kernel/silent_boot/pm_silentmode_kernel_state";
  bool silent_garage = false;             // silent mode is a remote task: garage while it lasts
  std::vector<std::string> silent_ports;  // ports switched off while silent (a hotspot)
  bool operator==(const VehicleConfig&) const = default;
};

// The public keys whose signatures make a remote configuration acceptable (apply_signed_config,
// controlplane/config/signed_config.hpp): Ed25519, 32 raw bytes each, named in the bundle.
struct TrustedKey {
  std::string name;
  std::array<uint8_t, 32> public_key{};
  bool operator==(const TrustedKey&) const = default;
};

struct SignedConfigConfig {
  std::vector<TrustedKey> trusted_keys;  // none: no signed configuration is accepted
  bool operator==(const SignedConfigConfig&) const = default;
};

struct Config {
  std::string source;  // the file it came from
  std::string board;   // the board profile the ports' "board:SLOT" devices came from, if any
  std::vector<PortConfig> ports;
  DataplaneConfig dataplane;
  KernelEngineConfig kernel_engine;
  OffloadConfig offload;
  std::optional<UpstreamConfig> upstream;
  std::vector<UplinkConfig> uplinks;
  RoutingConfig routing;
  std::vector<SessionConfig> sessions;
  std::vector<DownstreamConfig> downstreams;
  std::vector<Prefix> local_prefixes;
  LimitsConfig limits;
  ApiConfig api;
  MetricsConfig metrics;
  VehicleConfig vehicle;
  SignedConfigConfig signed_config;
  // What must survive a reboot (data-limit accounting): persistent storage.
  std::string state_dir = "/var/lib/tetherpath";
  // What belongs to one run (the API socket, the instance lock): a tmpfs.
  std::string run_dir = "/run/tetherpath";

  const PortConfig* port(const std::string& name) const {
    for (const PortConfig& p : ports)
      if (p.name == name) return &p;
    return nullptr;
  }
};

// Why `next` cannot replace `running` without a restart (ports, dataplane, state directory, API
// socket, metrics listener), or empty when it can.
std::string live_change_refusal(const Config& running, const Config& next);

// Throws ConfigError.
Config load_file(const std::string& path);
Config load_string(const std::string& yaml, const std::string& source_name);

std::string to_string(Role r);
std::string to_string(Engine e);
std::string to_string(Hook h);

}  // namespace tp::conf
