// The packet engine: one instance per worker, sharing the flow tables and the topology. It takes
// a burst received on one port and sorts every packet into a transmit list per egress port, the
// punt list (to the kernel through the ingress port's exception path) or the drop list. It knows
// nothing of port backends: the caller does the I/O and frees drops.
#pragma once

#include <rte_mbuf.h>

#include <array>
#include <cstdint>

#include "counters.hpp"
#include "data_limits.hpp"
#include "flow_table.hpp"
#include "reason.hpp"
#include "topology_publisher.hpp"

namespace tp {

// One bulk table lookup per family and burst.
inline constexpr uint16_t kMaxBurst = FlowTable4::kMaxBulk;

struct Parsed;

struct EngineOutput {
  struct List {
    uint16_t n = 0;
    std::array<rte_mbuf*, kMaxBurst> pkts;
  };
  struct Exceptions {
    uint16_t n = 0;
    std::array<rte_mbuf*, kMaxBurst> pkts;
    std::array<Reason, kMaxBurst> reasons;
    void push(rte_mbuf* m, Reason r) {
      pkts[n] = m;
      reasons[n++] = r;
    }
  };
  std::array<List, kMaxPorts> tx;
  // Ports whose tx list is non-empty, in first-use order, so the caller visits only those.
  uint16_t n_tx_ports = 0;
  std::array<uint8_t, kMaxPorts> tx_ports;
  Exceptions punt;
  Exceptions drop;

  void clear() {
    for (uint16_t i = 0; i < n_tx_ports; ++i) tx[tx_ports[i]].n = 0;
    n_tx_ports = 0;
    punt.n = drop.n = 0;
  }
};

class Engine {
 public:
  struct Tables {
    const FlowTable4* v4;
    const FlowTable6* v6;
    const TopologyPublisher* topology;
    DataLimits* limits;
    const RuleTable6* rules6;  // IPv6 by address; nullptr unless offload.ipv6 is "neighbours"
  };

  Engine(const Tables& tables, WorkerCounters& counters) : t_(tables), c_(counters) {}

  // n <= kMaxBurst. `now` is the worker's coarse clock, stored as the flows' last-seen time.
  // Appends to `out` (call out.clear() between bursts once they are sent).
  void process(uint8_t in_port, rte_mbuf** pkts, uint16_t n, uint32_t now, EngineOutput& out);

 private:
  void except(EngineOutput& out, PortCounters& port, rte_mbuf* m, Reason r);
  void match_rules6(uint8_t in_port, const Topology& topo, Parsed* meta, const uint16_t* at,
                    uint16_t n, FlowAction** action) const;

  Tables t_;
  WorkerCounters& c_;
};

}  // namespace tp
