// Per-client traffic, kept monotonic from counters that are not: a fast-path flow's counters
// start at zero when it is installed and vanish when it goes back to the kernel, the kernel
// path's are per set element and start again when their table is made again. The ledger folds
// each source's growth since it last looked into buckets (client, uplink, session, roaming), so a
// connection that moves between the paths is counted once, in full, and a bucket never shrinks.
// Which bucket growth goes to is decided by whoever samples: sampling at every policy or roaming
// change with the state from before it puts each byte in the bucket of its time.
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>

#include "config.hpp"
#include "conntrack_entry.hpp"
#include "ip_addr.hpp"

namespace tp {

// Up: from the client toward the uplink. IP bytes (total length), as data limits count.
struct Traffic {
  uint64_t up_packets = 0, up_bytes = 0, down_packets = 0, down_bytes = 0;
  Traffic& operator+=(const Traffic& o);
  bool operator==(const Traffic&) const = default;
};

struct TrafficBucket {
  IpAddr client;
  std::string uplink;   // the uplink's name (its interface's without multi-uplink)
  std::string session;  // empty: the default policy
  conf::Roaming roaming = conf::Roaming::home;
  auto operator<=>(const TrafficBucket&) const = default;
};

class TrafficLedger {
 public:
  // A fast-path flow's counters now, and at its removal (the last reading; the flow is
  // forgotten). A reading below the previous one is a counter that started again.
  void flow(const CtKey& k, const TrafficBucket& b, const Traffic& now);
  void flow_gone(const CtKey& k, const TrafficBucket& b, const Traffic& last);
  // Flows that were neither read nor removed since the previous call are forgotten (their
  // counters went with them).
  void sweep_flows();
  // A kernel counter (a set element, named by what it counts) now.
  void kernel(const std::string& element, const TrafficBucket& b, const Traffic& now);
  // Kernel counters absent from a complete reading are forgotten: an element that expired and
  // comes back counts from zero.
  void sweep_kernel();
  std::size_t tracked_kernel() const { return kernel_.size(); }

  const std::map<TrafficBucket, Traffic>& buckets() const { return buckets_; }
  std::size_t tracked_flows() const { return flows_.size(); }

 private:
  struct Seen {
    Traffic last;
    bool read = true;
  };
  void fold(Traffic& last, const TrafficBucket& b, const Traffic& now);

  std::unordered_map<CtKey, Seen, CtKeyHash> flows_;
  std::unordered_map<std::string, Seen> kernel_;
  std::map<TrafficBucket, Traffic> buckets_;
};

}  // namespace tp
