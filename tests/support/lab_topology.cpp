#include "lab_topology.hpp"

#include <cstring>

#include "packet_builder.hpp"

namespace tp::test {
namespace {

EtherAddr ether(const std::string& s) {
  EtherAddr a;
  const Mac m = mac(s);
  std::memcpy(a.addr_bytes, m.data(), 6);
  return a;
}

void set_port(PortInfo& p, const std::string& mac_text, const std::string& v4,
              const std::string& v6, uint16_t mtu) {
  p = PortInfo{};
  p.enabled = true;
  p.mac = ether(mac_text);
  p.mtu = p.mtu6 = mtu;
  p.local4[p.n_local4++] = ip4(v4);
  p.local6[p.n_local6++] = ip6(v6);
}

void set_nexthop(NextHop& nh, uint16_t port, const std::string& src, const std::string& dst,
                 uint16_t mtu, uint16_t vlan = 0) {
  nh.port = port;
  nh.src_mac = ether(src);
  nh.dst_mac = ether(dst);
  nh.mtu = mtu;
  nh.vlan = vlan;
  nh.valid = true;
}

uint16_t be16(uint16_t v) { return __builtin_bswap16(v); }

}  // namespace

void install_lab_topology(FastPath& engine) {
  using namespace lab;
  engine.update_topology([](Topology& t) {
    set_port(t.ports[kModem], kModemMac, kModemAddr, kModemAddr6, kModemMtu);
    set_port(t.ports[kWifi], kWifiMac, kWifiAddr, kWifiAddr6, 1500);
    set_port(t.ports[kUsb], kUsbMac, "192.168.60.1", "2001:db8:60::1", 1500);
    set_nexthop(t.nexthops[kNhGateway], kModem, kModemMac, kGatewayMac, kModemMtu);
    set_nexthop(t.nexthops[kNhWifiClient], kWifi, kWifiMac, kWifiClientMac, 1500);
    set_nexthop(t.nexthops[kNhUsbClient], kUsb, kUsbMac, kUsbClientMac, 1500);
    set_nexthop(t.nexthops[kNhWifiVlan], kWifi, kWifiMac, kWifiClientMac, 1500, 20);
    set_nexthop(t.nexthops[kNhGatewayVlan], kModem, kModemMac, kGatewayMac, kModemMtu, 30);
  });
}

int add_masquerade4(FastPath& engine, uint8_t proto, const std::string& client, uint16_t cport,
                    const std::string& server, uint16_t sport, uint16_t nat_port, uint8_t down_port,
                    uint16_t down_nh, uint16_t up_nh) {
  const bool icmp = proto == 1;
  // ICMP echo: ports carry (identifier, type); the reply's identifier is the mapped one.
  const FlowKey4 orig{
      ip4(client), ip4(server), be16(cport), be16(icmp ? 8 : sport), proto, down_port, 0};
  const FlowKey4 reply{ip4(server),
                       ip4(lab::kModemAddr),
                       be16(icmp ? nat_port : sport),
                       be16(icmp ? 0 : nat_port),
                       proto,
                       lab::kModem,
                       0};
  return engine.install(
      plan_nat44(orig, Rewrite::snat, ip4(lab::kModemAddr), be16(nat_port), up_nh),
      plan_nat44(reply, Rewrite::dnat, ip4(client), be16(cport), down_nh));
}

int add_route6(FastPath& engine, uint8_t proto, const std::string& client, uint16_t cport,
               const std::string& server, uint16_t sport) {
  const bool icmp = proto == 58;
  const FlowKey6 orig{
      ip6(client), ip6(server), be16(cport), be16(icmp ? 128 : sport), proto, lab::kWifi, 0};
  const FlowKey6 reply{ip6(server),
                       ip6(client),
                       be16(icmp ? cport : sport),
                       be16(icmp ? 129 : cport),
                       proto,
                       lab::kModem,
                       0};
  return engine.install(FlowPlan6{orig, lab::kNhGateway}, FlowPlan6{reply, lab::kNhWifiClient});
}

}  // namespace tp::test
