// The lab as an engine sees it, for every engine's tests: port 0 is the modem (upstream), port 1
// the Wi-Fi and port 2 the USB downstream, with their MACs, addresses and next hops. Everything
// is written through the engine boundary (FastPath), so one setup serves the DPDK and BPF engines.
#pragma once

#include <cstdint>
#include <string>

#include "fast_path.hpp"

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

// Ports and next hops of the lab.
void install_lab_topology(FastPath& engine);

// Masquerade of one connection from a downstream client, exactly as conntrack would record it:
// original client:cport -> server:sport, reply server:sport -> modem:nat_port.
int add_masquerade4(FastPath& engine, uint8_t proto, const std::string& client, uint16_t cport,
                    const std::string& server, uint16_t sport, uint16_t nat_port,
                    uint8_t down_port = lab::kWifi, uint16_t down_nh = lab::kNhWifiClient,
                    uint16_t up_nh = lab::kNhGateway);
// A routed IPv6 flow from the Wi-Fi client.
int add_route6(FastPath& engine, uint8_t proto, const std::string& client, uint16_t cport,
               const std::string& server, uint16_t sport);

}  // namespace tp::test
