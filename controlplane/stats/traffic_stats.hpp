// Per-client and per-session statistics: the fast path's per-flow counters and the kernel path's
// set counters folded into one ledger, by client, uplink, session and the uplink's roaming state.
// Growth is put in the buckets of the state it happened in (the scene), so the daemon samples
// before the state changes (a policy update, a roaming flip) and whenever it reports.
// Control thread only; nothing here touches a packet.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "flow_manager.hpp"
#include "kernel_traffic.hpp"
#include "traffic_ledger.hpp"

namespace tp {

// What traffic is attributed by.
struct TrafficScene {
  struct Port {
    std::string name;
    bool downstream = false;
    bool operator==(const Port&) const = default;
  };
  std::vector<Port> ports;  // by port index
  uint32_t session_mask = 0;
  std::map<uint32_t, std::string> session_by_mark;  // (mark & session_mask) -> session
  struct Uplink {
    std::string name;
    conf::Roaming roaming = conf::Roaming::home;
    bool operator==(const Uplink&) const = default;
  };
  std::map<std::string, Uplink> uplinks;  // by interface; others count under their own name
  bool operator==(const TrafficScene&) const = default;
};

// Where a client is: its MAC and downstream, if the neighbour table knows it.
struct ClientPlace {
  std::string mac, downstream;
};

class TrafficStats {
 public:
  // Counting on the kernel path between these downstream interfaces and the rest. Empty, or
  // what went wrong (the fast path's share is counted either way).
  std::string install(const std::vector<std::string>& downstreams, bool ipv6_tracked);
  void remove() { kernel_.remove(); }

  // Folds what every source counted since the previous sample, by the scene set then.
  void sample(const FlowManager& flows);
  // What growth is attributed by from here on: sample() first, or the state before is lost.
  void set_scene(TrafficScene now) { scene_ = std::move(now); }
  const TrafficScene& scene() const { return scene_; }
  // A flow leaves the fast path: its last counts (FlowManager's removal hook).
  void flow_removed(const FlowView& v);

  nlohmann::json clients_json(const std::function<ClientPlace(const IpAddr&)>& place) const;
  nlohmann::json sessions_json() const;
  // Per session (empty: the default policy), IP bytes both ways, as the ledger holds them now.
  std::map<std::string, uint64_t> session_totals() const;
  void metrics(std::ostream& out) const;
  // The kernel path's last reading error (empty: none).
  const std::string& error() const { return error_; }
  const TrafficLedger& ledger() const { return ledger_; }

 private:
  TrafficBucket bucket(const IpAddr& client, const std::string& iface, uint32_t mark) const;
  std::optional<std::pair<TrafficBucket, Traffic>> of_flow(const FlowView& v) const;

  TrafficLedger ledger_;
  KernelTraffic kernel_;
  TrafficScene scene_;
  std::string error_;
};

}  // namespace tp
