// A DPDK packet engine wired to real flow tables and a published topology that mirrors the lab
// (lab_topology.hpp), filled through its engine boundary (fast_path). Used by the golden and
// malformed-input tests, the fuzzer and the engine benchmark.
#pragma once

#include <rte_rcu_qsbr.h>

#include <memory>
#include <string>

#include "dpdk_fast_path.hpp"
#include "engine.hpp"
#include "flow_table.hpp"
#include "lab_topology.hpp"
#include "packet_builder.hpp"
#include "topology_publisher.hpp"

namespace tp::test {

class EngineHarness {
 public:
  explicit EngineHarness(uint32_t capacity = 4096, uint32_t reader_threads = 1);
  ~EngineHarness();

  // lab_topology.hpp's, on this engine.
  int add_masquerade4(uint8_t proto, const std::string& client, uint16_t cport,
                      const std::string& server, uint16_t sport, uint16_t nat_port,
                      uint8_t down_port = lab::kWifi, uint16_t down_nh = lab::kNhWifiClient,
                      uint16_t up_nh = lab::kNhGateway) {
    return test::add_masquerade4(*fast_path, proto, client, cport, server, sport, nat_port,
                                 down_port, down_nh, up_nh);
  }
  int add_route6(uint8_t proto, const std::string& client, uint16_t cport,
                 const std::string& server, uint16_t sport) {
    return test::add_route6(*fast_path, proto, client, cport, server, sport);
  }

  // Runs one burst through the engine.
  EngineOutput& run(uint8_t in_port, rte_mbuf** pkts, uint16_t n, uint32_t now = 1);
  // One frame through the engine: where it went ("modem", "wifi", "usb", or the name of the
  // exception reason) and, if forwarded, the frame as it left.
  std::string send(uint8_t in_port, const Bytes& frame, Bytes* out_frame = nullptr);

  rte_rcu_qsbr* qsv = nullptr;
  std::unique_ptr<FlowTable4> v4;
  std::unique_ptr<FlowTable6> v6;
  std::unique_ptr<RuleTable6> rules6;  // empty unless a test adds rules
  std::unique_ptr<TopologyPublisher> topology;
  std::unique_ptr<WorkerCounters> counters;
  std::unique_ptr<DataLimits> limits = std::make_unique<DataLimits>();
  std::unique_ptr<Engine> engine;
  std::unique_ptr<DpdkFastPath> fast_path;
  EngineOutput out;
};

}  // namespace tp::test
