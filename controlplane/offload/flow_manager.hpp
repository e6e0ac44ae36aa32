// The offload lifecycle: turns the conntrack mirror's upserts and destroys into fast-path flows,
// follows next-hop changes, runs NAT keepalive rounds and hands flows back to the kernel.
// Control thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "conntrack_entry.hpp"
#include "conntrack_writer.hpp"
#include "fast_path.hpp"
#include "offload_policy.hpp"
#include "topology_sync.hpp"

namespace tp {

struct FlowStats {
  uint64_t installed = 0, removed = 0, install_failed = 0, handed_back = 0;
  uint64_t upserts = 0, unchanged = 0, destroys = 0, incomplete = 0;
  uint64_t keepalive_rounds = 0, keepalives = 0, keepalive_gone = 0, keepalive_probes = 0;
  uint64_t neighbour_updates = 0;
  std::map<std::string, uint64_t, std::less<>> refused;  // by policy reason
};

struct FlowView {
  const CtEntry* ct;
  uint8_t orig_in, reply_in;
  uint64_t orig_packets, orig_bytes, reply_packets, reply_bytes;
  uint32_t last_seen;
};

class FlowManager {
 public:
  // `writer` may be null (tests): no hand-back updates are sent then. `clock_ms`: monotonic
  // milliseconds (a test may drive it).
  FlowManager(FastPath& engine, TopologySync& topo, const KernelView& kernel, PolicyConfig cfg,
              ConntrackWriter* writer, std::function<uint64_t()> clock_ms = steady_ms);
  static uint64_t steady_ms();
  ~FlowManager();

  void upsert(const CtEntry& e);
  void destroyed(const CtEntry& e);
  // A dump that replaces everything: upserts between begin and end are decided together at the
  // end (route lookups in batches), then what the dump did not bring is purged. A dump that
  // could not complete is abandoned: what it brought is decided, nothing purged.
  void resync_begin();
  void resync_end();
  void resync_abandoned();
  // Neighbour appeared, changed or went away (mac empty).
  void neighbour_changed(int ifindex, const IpAddr& addr, std::optional<MacAddr> mac);
  // Routes or addresses changed: every flow is decided again.
  void reevaluate_all();
  // Entries decided together, their route lookups fetched in batches.
  void upsert_all(const std::vector<CtEntry>& entries);
  // A port went down (carrier or administratively): its flows go back to the kernel. Returns
  // their conntrack entries (for a failed uplink, the caller removes them from the kernel).
  std::vector<CtEntry> port_down(uint8_t port);
  // The entries waiting outside the fast path (for a route or a neighbour) whose NAT address is
  // one of `addrs`, forgotten here: a failed uplink's flows that a route change took out of the
  // fast path before its link loss was seen.
  std::vector<CtEntry> take_natted_to(const std::vector<IpAddr>& addrs);

  // Keepalive round (keepalive.hpp): flows that carried traffic since their last refresh get
  // their conntrack timeout set again once their protocol's period is up; idle flows past their
  // known expiry are probed; entries the kernel no longer has are removed. `now_ms`: a monotonic
  // clock; how long a flow has been idle is read on the engine's own clock.
  void keepalive_round(ConntrackWriter& writer, const ConntrackTimeouts& timeouts,
                       uint32_t interval_s, uint64_t now_ms);
  // Every flow goes back to the kernel (shutdown, offload stopped).
  void release_all();

  // A new policy; every flow decided again by it unless the caller does that (a resync).
  void set_config(PolicyConfig cfg, bool reevaluate = true);
  const PolicyConfig& config() const { return cfg_; }
  std::size_t size() const { return flows_.size(); }
  // Where an offloaded flow's original direction leaves (its plan), if it is offloaded.
  std::optional<int> out_ifindex(const CtEntry& e) const;
  // The flows `pick` chooses (given the entry and the interface its original direction leaves
  // by) leave the fast path at once, their counters read and their entries removed in batches;
  // their conntrack entries are returned (the caller deals with the kernel's).
  std::vector<CtEntry> take_where(const std::function<bool(const CtEntry&, int out_ifindex)>& pick);
  std::size_t pending() const { return pending_.size(); }
  std::size_t parked() const { return parked_.size(); }
  const FlowStats& stats() const { return stats_; }
  void for_each(const std::function<void(const FlowView&)>& fn) const;
  // A flow leaves the fast path, with its counts as last read (per-client statistics).
  std::function<void(const FlowView&)> on_removed;

 private:
  struct Flow {
    CtEntry ct;
    Decision plan;
    uint16_t nh_orig = 0, nh_reply = 0;
    FlowUsage at_refresh;          // both directions' use, summed (last use: the later one)
    uint64_t refreshed_ms = 0;     // when the kernel's timeout was last set or reported
    uint32_t known_timeout_s = 0;  // what it was then (0: unknown, probe at the next round)
    bool seen = true;              // in the current resync
  };
  using Map = std::unordered_map<CtKey, Flow, CtKeyHash>;

  bool install(const CtEntry& e, const Decision& d);
  void remove(Map::iterator it, bool hand_back);
  void hand_back(const std::vector<CtEntry>& tcp_entries);
  // These flows' use (orig, reply), in their order, read at once per family
  // (FastPath::read_usage); usage_of_all: every flow's, in the order of flows_.
  std::vector<std::pair<FlowUsage, FlowUsage>> usage_of(
      const std::vector<const Flow*>& flows) const;
  std::vector<std::pair<FlowUsage, FlowUsage>> usage_of_all() const;
  template <typename Key>
  static std::pair<Key, Key> keys_of(const Flow& f);  // the engine's keys, orig and reply
  static FlowView view(const Flow& f, const FlowUsage& orig, const FlowUsage& reply);
  static bool same_plan(const Decision& a, const Decision& b);
  static CtEntry complete(const CtEntry& e, const CtEntry* known);

  FastPath& engine_;
  TopologySync& topo_;
  const KernelView& kernel_;
  PolicyConfig cfg_;
  ConntrackWriter* writer_;
  std::function<uint64_t()> clock_ms_;
  Map flows_;
  std::unordered_map<CtKey, CtEntry, CtKeyHash> pending_;  // waiting for a neighbour
  // Refused by the kernel's routing (a blackhole, a rule toward no port of ours...): decided
  // again when routes or rules change, since no conntrack event may come to say so.
  std::unordered_map<CtKey, CtEntry, CtKeyHash> parked_;
  FlowStats stats_;
  bool resyncing_ = false;
  std::vector<CtEntry> resync_batch_;
};

}  // namespace tp
