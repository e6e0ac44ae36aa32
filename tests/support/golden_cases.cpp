#include "golden_cases.hpp"

#include <stdexcept>

namespace tp::test {

using namespace lab;

namespace {

Golden fwd(std::string name, uint8_t in_port, const PacketBuilder& in, uint8_t out_port,
           const PacketBuilder& out) {
  return {std::move(name), in_port, in.build(), out_port, out.build(), Reason::unknown_flow};
}
Golden exc(std::string name, uint8_t in_port, const Bytes& in, Reason r) {
  return {std::move(name), in_port, in, std::nullopt, {}, r};
}
Golden exc(std::string name, uint8_t in_port, const PacketBuilder& in, Reason r) {
  return exc(std::move(name), in_port, in.build(), r);
}

uint16_t be16(uint16_t v) { return __builtin_bswap16(v); }

// A UDP flow from the Wi-Fi client on a VLAN, out of the modem through `up_nh`, back through
// `down_nh`.
int add_vlan_flow(FastPath& engine, uint16_t vlan, uint16_t cport, uint16_t sport, uint16_t nat,
                  uint16_t up_nh, uint16_t down_nh) {
  const FlowKey4 orig{ip4(kWifiClient), ip4(kServer), be16(cport), be16(sport), 17, kWifi, vlan};
  const FlowKey4 reply{ip4(kServer), ip4(kModemAddr), be16(sport), be16(nat), 17, kModem, 0};
  return engine.install(plan_nat44(orig, Rewrite::snat, ip4(kModemAddr), be16(nat), up_nh),
                        plan_nat44(reply, Rewrite::dnat, ip4(kWifiClient), be16(cport), down_nh));
}

}  // namespace

// Frames of the offloaded flows, as the Wi-Fi client sends them and as the server answers.
PacketBuilder up4() {
  return PacketBuilder().eth(kWifiClientMac, kWifiMac).ipv4(kWifiClient, kServer);
}
PacketBuilder down4() {
  return PacketBuilder().eth(kGatewayMac, kModemMac).ipv4(kServer, kModemAddr);
}
PacketBuilder up4_out() {
  return PacketBuilder().eth(kModemMac, kGatewayMac).ipv4(kModemAddr, kServer).ttl(63);
}
PacketBuilder down4_out() {
  return PacketBuilder().eth(kWifiMac, kWifiClientMac).ipv4(kServer, kWifiClient).ttl(63);
}
PacketBuilder up6() {
  return PacketBuilder().eth(kWifiClientMac, kWifiMac).ipv6(kWifiClient6, kServer6);
}
PacketBuilder down6() {
  return PacketBuilder().eth(kGatewayMac, kModemMac).ipv6(kServer6, kWifiClient6);
}
PacketBuilder up6_out() {
  return PacketBuilder().eth(kModemMac, kGatewayMac).ipv6(kWifiClient6, kServer6).hop_limit(63);
}
PacketBuilder down6_out() {
  return PacketBuilder().eth(kWifiMac, kWifiClientMac).ipv6(kServer6, kWifiClient6).hop_limit(63);
}

std::vector<Golden> golden_forwarding_cases() {
  return {
      fwd("tcp upstream: SNAT address and port", kWifi, up4().tcp(kCport, 80, kAck).payload(100),
          kModem, up4_out().tcp(kNatPort, 80, kAck).payload(100)),
      fwd("tcp downstream: DNAT address and port", kModem,
          down4().tcp(80, kNatPort, kAck | kPsh).payload(1000), kWifi,
          down4_out().tcp(80, kCport, kAck | kPsh).payload(1000)),
      fwd("tcp with odd payload length", kWifi, up4().tcp(kCport, 80).payload(37, 0xff), kModem,
          up4_out().tcp(kNatPort, 80).payload(37, 0xff)),
      fwd("tcp exactly at the modem MTU", kWifi, up4().tcp(kCport, 80).payload(1400 - 40), kModem,
          up4_out().tcp(kNatPort, 80).payload(1400 - 40)),
      fwd("udp upstream", kWifi, up4().udp(5353, 53).payload(40), kModem,
          up4_out().udp(61001, 53).payload(40)),
      fwd("udp downstream", kModem, down4().udp(53, 61001).payload(200), kWifi,
          down4_out().udp(53, 5353).payload(200)),
      fwd("udp zero checksum stays zero upstream", kWifi,
          up4().udp(7000, 7000).udp_no_checksum().payload(64), kModem,
          up4_out().udp(61002, 7000).udp_no_checksum().payload(64)),
      fwd("udp zero checksum stays zero downstream", kModem,
          down4().udp(7000, 61002).udp_no_checksum().payload(64), kWifi,
          down4_out().udp(7000, 7000).udp_no_checksum().payload(64)),
      fwd("icmp echo request: identifier mapped", kWifi, up4().icmp(8, 0, 0x1234, 1).payload(56),
          kModem, up4_out().icmp(8, 0, 0x4321, 1).payload(56)),
      fwd("icmp echo reply: identifier mapped back", kModem,
          down4().icmp(0, 0, 0x4321, 1).payload(56), kWifi,
          down4_out().icmp(0, 0, 0x1234, 1).payload(56)),
      fwd("ipv4 with DF set keeps it", kWifi, up4().dont_fragment().tcp(kCport, 80).payload(10),
          kModem, up4_out().dont_fragment().tcp(kNatPort, 80).payload(10)),
      fwd("ipv4 ttl 2 is still forwarded", kWifi, up4().ttl(2).tcp(kCport, 80), kModem,
          up4_out().ttl(1).tcp(kNatPort, 80)),
      fwd("vlan 20 in, untagged out", kWifi,
          PacketBuilder()
              .eth(kWifiClientMac, kWifiMac)
              .vlan(20)
              .ipv4(kWifiClient, kServer)
              .udp(6000, 443)
              .payload(30),
          kModem, up4_out().udp(61003, 443).payload(30)),
      fwd("untagged in, vlan 20 out", kModem, down4().udp(443, 61003).payload(30), kWifi,
          PacketBuilder()
              .eth(kWifiMac, kWifiClientMac)
              .vlan(20)
              .ipv4(kServer, kWifiClient)
              .ttl(63)
              .udp(443, 6000)
              .payload(30)),
      fwd("vlan 21 in, retagged 30 out, priority kept", kWifi,
          PacketBuilder()
              .eth(kWifiClientMac, kWifiMac)
              .vlan(21, 5)
              .ipv4(kWifiClient, kServer)
              .udp(6001, 443)
              .payload(30),
          kModem,
          PacketBuilder()
              .eth(kModemMac, kGatewayMac)
              .vlan(30, 5)
              .ipv4(kModemAddr, kServer)
              .ttl(63)
              .udp(61004, 443)
              .payload(30)),
      fwd("ipv6 tcp upstream: hop limit and MACs only", kWifi, up6().tcp(kCport, 443).payload(100),
          kModem, up6_out().tcp(kCport, 443).payload(100)),
      fwd("ipv6 tcp downstream", kModem, down6().tcp(443, kCport).payload(1200), kWifi,
          down6_out().tcp(443, kCport).payload(1200)),
      fwd("ipv6 icmpv6 echo request", kWifi, up6().icmp6(128, 0, 7, 1).payload(56), kModem,
          up6_out().icmp6(128, 0, 7, 1).payload(56)),
      fwd("ipv6 icmpv6 echo reply", kModem, down6().icmp6(129, 0, 7, 1).payload(56), kWifi,
          down6_out().icmp6(129, 0, 7, 1).payload(56)),
  };
}

std::vector<Golden> golden_exception_cases() {
  const auto wifi_eth = [] { return PacketBuilder().eth(kWifiClientMac, kWifiMac); };
  Bytes truncated = up4().tcp(kCport, 80).payload(100).build();
  truncated.resize(14 + 10);
  Bytes tcp_cut = up4().tcp(kCport, 80).build();
  tcp_cut.resize(14 + 20 + 12);
  // IPv4 total length and the IP header must agree with the cut frame.
  tcp_cut[14 + 2] = 0;
  tcp_cut[14 + 3] = 32;
  Bytes ext_cut = up6().ipv6_ext(0).tcp(kCport, 443).build();
  ext_cut[14 + 40 + 1] = 20;  // hop-by-hop claims 168 bytes
  return {
      exc("unknown flow", kWifi, up4().tcp(kCport + 1, 80), Reason::unknown_flow),
      exc("unknown ipv6 flow", kWifi, up6().udp(1, 2), Reason::unknown_flow),
      exc("tcp SYN", kWifi, up4().tcp(kCport, 80, kSyn), Reason::tcp_control),
      exc("tcp FIN|ACK", kModem, down4().tcp(80, kNatPort, kFin | kAck), Reason::tcp_control),
      exc("tcp RST", kWifi, up4().tcp(kCport, 80, kRst), Reason::tcp_control),
      exc("ipv6 tcp FIN", kWifi, up6().tcp(kCport, 443, kFin | kAck), Reason::tcp_control),
      exc("ipv4 more fragments", kWifi, up4().frag(true, 0).udp(5353, 53).payload(20),
          Reason::fragment),
      exc("ipv4 fragment offset", kWifi, up4().frag(false, 100).udp(5353, 53).payload(20),
          Reason::fragment),
      exc("ipv6 fragment header", kWifi, up6().ipv6_ext(44).udp(1, 2).payload(8), Reason::fragment),
      exc("ipv6 fragment after hop-by-hop", kWifi, up6().ipv6_ext(0).ipv6_ext(44).udp(1, 2),
          Reason::fragment),
      exc("ipv4 ttl 1", kWifi, up4().ttl(1).tcp(kCport, 80), Reason::ttl_expired),
      exc("ipv4 ttl 0", kWifi, up4().ttl(0).tcp(kCport, 80), Reason::ttl_expired),
      exc("ipv6 hop limit 1", kWifi, up6().hop_limit(1).tcp(kCport, 443), Reason::ttl_expired),
      exc("ipv4 options", kWifi, up4().ipv4_options({1, 1, 1, 1}).tcp(kCport, 80),
          Reason::ipv4_options),
      exc("ipv6 hop-by-hop", kWifi, up6().ipv6_ext(0).tcp(kCport, 443), Reason::ipv6_ext_header),
      exc("ipv6 routing + destination options", kWifi,
          up6().ipv6_ext(43, 1).ipv6_ext(60).tcp(kCport, 443), Reason::ipv6_ext_header),
      exc("larger than the modem MTU", kWifi, up4().tcp(kCport, 80).payload(1400 - 39),
          Reason::too_big),
      exc("ipv6 larger than the modem MTU", kWifi, up6().tcp(kCport, 443).payload(1400 - 59),
          Reason::too_big),
      exc("icmp destination unreachable", kModem, down4().icmp(3, 3).payload(28),
          Reason::icmp_error),
      exc("icmp time exceeded", kModem, down4().icmp(11, 0).payload(28), Reason::icmp_error),
      exc("icmpv6 packet too big", kModem, down6().icmp6(2, 0).payload(48), Reason::icmp_error),
      exc("icmp timestamp", kWifi, up4().icmp(13, 0), Reason::icmp_other),
      exc("icmpv6 node information", kWifi, up6().icmp6(139, 0), Reason::icmp_other),
      exc("arp request", kWifi,
          PacketBuilder().eth(kWifiClientMac, "ff:ff:ff:ff:ff:ff").ethertype(0x0806).payload(28),
          Reason::arp),
      exc("arp reply", kWifi, wifi_eth().ethertype(0x0806).payload(28), Reason::arp),
      exc("ndp neighbour solicitation", kWifi, up6().icmp6(135, 0).payload(16), Reason::ndp),
      exc("ndp router solicitation", kWifi, up6().icmp6(133, 0), Reason::ndp),
      exc("other ethertype", kWifi, wifi_eth().ethertype(0x88b5).payload(40), Reason::not_ip),
      exc("broadcast MAC", kWifi,
          PacketBuilder()
              .eth(kWifiClientMac, "ff:ff:ff:ff:ff:ff")
              .ipv4(kWifiClient, kServer)
              .udp(68, 67),
          Reason::l2_multicast),
      exc("multicast MAC", kWifi,
          PacketBuilder()
              .eth(kWifiClientMac, "33:33:00:00:00:01")
              .ipv6(kWifiClient6, "ff02::1")
              .udp(1, 2),
          Reason::l2_multicast),
      exc("frame for another host", kWifi,
          PacketBuilder()
              .eth(kWifiClientMac, "02:00:00:00:99:99")
              .ipv4(kWifiClient, kServer)
              .tcp(kCport, 80),
          Reason::l2_other_host),
      exc("ipv4 limited broadcast", kWifi, up4().ipv4(kWifiClient, "255.255.255.255").udp(68, 67),
          Reason::not_unicast_ip),
      exc("ipv4 multicast", kWifi, up4().ipv4(kWifiClient, "239.1.1.1").udp(5000, 5000),
          Reason::not_unicast_ip),
      exc("ipv6 link-local source", kWifi, up6().ipv6("fe80::1", kServer6).tcp(kCport, 443),
          Reason::ipv6_non_global),
      exc("ipv6 multicast destination", kWifi, up6().ipv6(kWifiClient6, "ff05::2").udp(1, 2),
          Reason::ipv6_non_global),
      exc("ipv6 unspecified source", kWifi, up6().ipv6("::", kServer6).udp(1, 2),
          Reason::ipv6_non_global),
      exc("ipv6 v4-mapped destination", kWifi, up6().ipv6(kWifiClient6, "::ffff:1.2.3.4").udp(1, 2),
          Reason::ipv6_non_global),
      exc("to the box over ipv4", kWifi, up4().ipv4(kWifiClient, kWifiAddr).tcp(kCport, 22),
          Reason::local),
      exc("to the box over ipv6", kWifi, up6().ipv6(kWifiClient6, kWifiAddr6).udp(1, 53),
          Reason::local),
      exc("gre", kWifi, up4().l4_proto(47).payload(20), Reason::unsupported_l4),
      exc("ipv6 no next header", kWifi, up6().l4_proto(59), Reason::unsupported_l4),
      exc("stacked vlan tags", kWifi,
          PacketBuilder()
              .eth(kWifiClientMac, kWifiMac)
              .vlan(10)
              .vlan2(20)
              .ipv4(kWifiClient, kServer)
              .udp(1, 2),
          Reason::vlan_stacked),
      exc("truncated ipv4 header", kWifi, truncated, Reason::malformed),
      exc("ihl below 5", kWifi, up4().ihl(4).tcp(kCport, 80), Reason::malformed),
      exc("total length beyond the frame", kWifi, up4().ip_total_length(1000).tcp(kCport, 80),
          Reason::malformed),
      exc("total length shorter than the header", kWifi, up4().ip_total_length(12).tcp(kCport, 80),
          Reason::malformed),
      exc("bad ipv4 header checksum", kWifi, up4().bad_ip_checksum().tcp(kCport, 80),
          Reason::malformed),
      exc("tcp data offset below 5", kWifi, up4().tcp(kCport, 80).tcp_data_offset(4),
          Reason::malformed),
      exc("tcp data offset beyond the packet", kWifi, up4().tcp(kCport, 80).tcp_data_offset(15),
          Reason::malformed),
      exc("truncated tcp header", kWifi, tcp_cut, Reason::malformed),
      exc("ipv6 payload length beyond the frame", kWifi,
          up6().ipv6_payload_length(2000).tcp(kCport, 443), Reason::malformed),
      exc("ipv6 extension header beyond the packet", kWifi, ext_cut, Reason::malformed),
      exc("flow whose next hop was withdrawn", kWifi, up4().udp(9000, 9000).payload(10),
          Reason::no_nexthop),
      exc("port not in the topology", 7, up4().tcp(kCport, 80), Reason::port_disabled),
      exc("runt frame", kWifi, Bytes(10, 0x42), Reason::runt),
      exc("empty frame", kWifi, Bytes{}, Reason::runt),
  };
}

void install_golden_state(FastPath& engine) {
  install_lab_topology(engine);
  auto must = [](int rc, const char* what) {
    if (rc != 0) throw std::runtime_error(std::string("golden state: cannot install ") + what);
  };
  must(add_masquerade4(engine, 6, kWifiClient, kCport, kServer, 80, kNatPort), "tcp");
  must(add_masquerade4(engine, 17, kWifiClient, 5353, kServer, 53, 61001), "udp");
  must(add_masquerade4(engine, 17, kWifiClient, 7000, kServer, 7000, 61002), "udp 7000");
  must(add_masquerade4(engine, 1, kWifiClient, 0x1234, kServer, 0, 0x4321), "icmp");
  must(add_masquerade4(engine, 17, kWifiClient, 9000, kServer, 9000, 61009, kWifi, kNhWifiClient,
                       kNhWithdrawn),
       "udp 9000");
  must(add_route6(engine, 6, kWifiClient6, kCport, kServer6, 443), "ipv6 tcp");
  must(add_route6(engine, 58, kWifiClient6, 7, kServer6, 0), "ipv6 icmp");
  // Flows on VLAN 20 and 21 of the Wi-Fi port.
  must(add_vlan_flow(engine, 20, 6000, 443, 61003, kNhGateway, kNhWifiVlan), "vlan 20");
  must(add_vlan_flow(engine, 21, 6001, 443, 61004, kNhGatewayVlan, kNhWifiClient), "vlan 21");
}

}  // namespace tp::test
