// A packet engine wired to real flow tables and a published topology that mirrors the lab: port 0
// is the modem (upstream), port 1 the Wi-Fi and port 2 the USB downstream. Used by the golden and
// malformed-input tests, the fuzzer and the engine benchmark.
#pragma once

#include <rte_rcu_qsbr.h>

#include <memory>
#include <string>

#include "engine.hpp"
#include "flow_table.hpp"
#include "packet_builder.hpp"
#include "topology_publisher.hpp"

namespace tp::test {

namespace lab {
inline constexpr uint8_t kModem = 0, kWifi = 1, kUsb = 2;
inline const std::string kModemMac = "02:00:00:00:00:01", kGatewayMac = "02:00:00:00:00:fe";
inline const std::string kWifiMac = "02:00:00:00:01:01", kWifiClientMac = "02:00:00:00:01:0a";
inline const std::string kUsbMac = "02:00:00:00:02:01", kUsbClientMac = "02:00:00:00:02:0a";
inline const std::string kModemAddr = "100.64.0.2", kWifiAddr = "192.168.50.1";
inline const std::string kModemAddr6 = "2001:db8:100::2", kWifiAddr6 = "2001:db8:50::1";
inline const std::string kWifiClient = "192.168.50.10", kServer = "203.0.113.10";
inline const std::string kWifiClient6 = "2001:db8:50::10", kServer6 = "2001:db8:ffff::10";
// Next hops: to the gateway on the modem, to each client, and to the client over VLAN 20.
inline constexpr uint16_t kNhGateway = 1, kNhWifiClient = 2, kNhUsbClient = 3, kNhWifiVlan = 4,
                          kNhGatewayVlan = 5, kNhWithdrawn = 6;
inline constexpr uint16_t kModemMtu = 1400;
}  // namespace lab

class EngineHarness {
 public:
  explicit EngineHarness(uint32_t capacity = 4096, uint32_t reader_threads = 1);
  ~EngineHarness();

  // Masquerade of one connection from the Wi-Fi client, exactly as conntrack would record it:
  // original client:cport -> server:sport, reply server:sport -> modem:nat_port.
  int add_masquerade4(uint8_t proto, const std::string& client, uint16_t cport,
                      const std::string& server, uint16_t sport, uint16_t nat_port,
                      uint8_t down_port = lab::kWifi, uint16_t down_nh = lab::kNhWifiClient,
                      uint16_t up_nh = lab::kNhGateway);
  int add_route6(uint8_t proto, const std::string& client, uint16_t cport,
                 const std::string& server, uint16_t sport);

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
  EngineOutput out;
};

}  // namespace tp::test
