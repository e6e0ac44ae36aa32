// Packet-golden tables (katran, cilium): {description, input frame, expected verdict, expected
// output bytes}, run through the real engine with the real flow tables. Expected frames are built
// independently with full checksum computation, so every incremental update is checked.
#include <gtest/gtest.h>

#include <functional>

#include "dpdk_env.hpp"
#include "engine_harness.hpp"

namespace tp::test {
namespace {

using namespace lab;

constexpr uint8_t kAck = 0x10, kSyn = 0x02, kFin = 0x01, kRst = 0x04, kPsh = 0x08;
constexpr uint16_t kCport = 40000, kNatPort = 61000;

struct Golden {
  std::string name;
  uint8_t in_port;
  Bytes in;
  // Forwarded: the egress port and exact bytes. Otherwise the reason.
  std::optional<uint8_t> out_port;
  Bytes out;
  Reason reason = Reason::unknown_flow;
};

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

std::vector<Golden> forwarding_cases() {
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

std::vector<Golden> exception_cases() {
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

class GoldenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    init_eal();
    h = std::make_unique<EngineHarness>();
    ASSERT_EQ(0, h->add_masquerade4(6, kWifiClient, kCport, kServer, 80, kNatPort));
    ASSERT_EQ(0, h->add_masquerade4(17, kWifiClient, 5353, kServer, 53, 61001));
    ASSERT_EQ(0, h->add_masquerade4(17, kWifiClient, 7000, kServer, 7000, 61002));
    ASSERT_EQ(0, h->add_masquerade4(1, kWifiClient, 0x1234, kServer, 0, 0x4321));
    ASSERT_EQ(0, h->add_masquerade4(17, kWifiClient, 9000, kServer, 9000, 61009, kWifi,
                                    kNhWifiClient, kNhWithdrawn));
    ASSERT_EQ(0, h->add_route6(6, kWifiClient6, kCport, kServer6, 443));
    ASSERT_EQ(0, h->add_route6(58, kWifiClient6, 7, kServer6, 0));
    // Flows on VLAN 20 and 21 of the Wi-Fi port.
    add_vlan_flow(20, 6000, 443, 61003, kNhGateway, kNhWifiVlan);
    add_vlan_flow(21, 6001, 443, 61004, kNhGatewayVlan, kNhWifiClient);
  }

  void add_vlan_flow(uint16_t vlan, uint16_t cport, uint16_t sport, uint16_t nat, uint16_t up_nh,
                     uint16_t down_nh) {
    auto be = [](uint16_t v) { return __builtin_bswap16(v); };
    FlowKey4 orig{ip4(kWifiClient), ip4(kServer), be(cport), be(sport), 17, kWifi, vlan};
    FlowKey4 reply{ip4(kServer), ip4(kModemAddr), be(sport), be(nat), 17, kModem, 0};
    ASSERT_EQ(
        0, h->v4->insert(
               orig, make_nat44_action(orig, Rewrite::snat, ip4(kModemAddr), be(nat), up_nh), reply,
               make_nat44_action(reply, Rewrite::dnat, ip4(kWifiClient), be(cport), down_nh)));
  }

  void check(const Golden& g) {
    SCOPED_TRACE(g.name);
    rte_mbuf* m = to_mbuf(g.in);
    ASSERT_NE(m, nullptr);
    EngineOutput& out = h->run(g.in_port, &m, 1);
    if (g.out_port) {
      ASSERT_EQ(out.punt.n, 0) << "punted: " << name(out.punt.reasons[0]);
      ASSERT_EQ(out.drop.n, 0);
      ASSERT_EQ(out.n_tx_ports, 1);
      EXPECT_EQ(out.tx_ports[0], *g.out_port);
      ASSERT_EQ(out.tx[*g.out_port].n, 1);
      const Bytes got = from_mbuf(out.tx[*g.out_port].pkts[0]);
      EXPECT_EQ(verify_checksums(got), "");
      EXPECT_EQ(hex(got), hex(g.out));
    } else {
      ASSERT_EQ(out.n_tx_ports, 0) << "forwarded instead of " << name(g.reason);
      auto& list = is_drop(g.reason) ? out.drop : out.punt;
      ASSERT_EQ(out.punt.n + out.drop.n, 1);
      ASSERT_EQ(list.n, 1) << "expected " << (is_drop(g.reason) ? "drop" : "punt");
      EXPECT_EQ(name(list.reasons[0]), name(g.reason));
      // A punted packet reaches the kernel exactly as it arrived.
      if (!is_drop(g.reason)) {
        EXPECT_EQ(hex(from_mbuf(list.pkts[0])), hex(g.in));
      }
    }
    rte_pktmbuf_free(m);
  }

  std::unique_ptr<EngineHarness> h;
};

TEST_F(GoldenTest, Forwarding) {
  for (const auto& g : forwarding_cases()) check(g);
}

TEST_F(GoldenTest, Exceptions) {
  for (const auto& g : exception_cases()) check(g);
}

TEST_F(GoldenTest, EveryReasonIsCovered) {
  std::array<bool, kReasonCount> seen{};
  for (const auto& g : exception_cases()) seen[static_cast<size_t>(g.reason)] = true;
  seen[static_cast<size_t>(Reason::no_headroom)] = true;  // NoHeadroomPuntsUntouched below
  seen[static_cast<size_t>(Reason::data_limit)] = true;   // DataLimit* below
  for (size_t r = 0; r < kReasonCount; ++r) EXPECT_TRUE(seen[r]) << name(static_cast<Reason>(r));
}

TEST_F(GoldenTest, NoHeadroomPuntsUntouched) {
  const Bytes in = down4().udp(443, 61003).payload(30).build();
  rte_mbuf* m = rte_pktmbuf_alloc(mbuf_pool());
  ASSERT_NE(m, nullptr);
  m->data_off = 0;  // no room to push the VLAN tag
  std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(in.size())), in.data(), in.size());
  EngineOutput& out = h->run(kModem, &m, 1);
  ASSERT_EQ(out.punt.n, 1);
  EXPECT_EQ(out.punt.reasons[0], Reason::no_headroom);
  EXPECT_EQ(hex(from_mbuf(m)), hex(in));
  rte_pktmbuf_free(m);
}

TEST_F(GoldenTest, CountersFollowPackets) {
  std::vector<rte_mbuf*> burst;
  for (int i = 0; i < 3; ++i) burst.push_back(to_mbuf(up4().tcp(kCport, 80).payload(100).build()));
  burst.push_back(to_mbuf(up4().tcp(kCport, 80, kSyn).build()));
  burst.push_back(to_mbuf(Bytes(5, 0)));
  EngineOutput& out = h->run(kWifi, burst.data(), static_cast<uint16_t>(burst.size()), 777);
  EXPECT_EQ(out.tx[kModem].n, 3);

  const FlowKey4 orig{ip4(kWifiClient),
                      ip4(kServer),
                      __builtin_bswap16(kCport),
                      __builtin_bswap16(80),
                      6,
                      kWifi,
                      0};
  const FlowAction* a = h->v4->find(orig);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->packets.load(), 3u);
  EXPECT_EQ(a->bytes.load(), 3u * 140);
  EXPECT_EQ(a->last_seen.load(), 777u);

  const WorkerCounters& c = *h->counters;
  EXPECT_EQ(c.ports[kWifi].rx_packets.get(), 5u);
  EXPECT_EQ(c.ports[kWifi].rx_ip_bytes.get(), 3u * 140 + 40);  // IP bytes: SYN is 40
  EXPECT_EQ(c.ports[kWifi].fwd_rx_packets.get(), 3u);
  EXPECT_EQ(c.ports[kModem].fwd_tx_bytes.get(), 3u * 140);
  EXPECT_EQ(c.ports[kWifi].punted.get(), 1u);
  EXPECT_EQ(c.ports[kWifi].dropped.get(), 1u);
  EXPECT_EQ(c.reasons[static_cast<size_t>(Reason::tcp_control)].get(), 1u);
  EXPECT_EQ(c.reasons[static_cast<size_t>(Reason::runt)].get(), 1u);
  for (rte_mbuf* m : burst) rte_pktmbuf_free(m);
}

TEST_F(GoldenTest, BurstKeepsOrderAndSplitsByEgress) {
  std::vector<rte_mbuf*> burst;
  // Alternate v4 and v6 packets of the two upstream flows, with a punt in between.
  for (int i = 0; i < 20; ++i) {
    Bytes b = i % 3 == 0   ? up6().tcp(kCport, 443).payload(static_cast<size_t>(i)).build()
              : i % 3 == 1 ? up4().tcp(kCport, 80).payload(static_cast<size_t>(i)).build()
                           : up4().tcp(kCport, 80, kSyn).payload(static_cast<size_t>(i)).build();
    burst.push_back(to_mbuf(b));
  }
  EngineOutput& out = h->run(kWifi, burst.data(), static_cast<uint16_t>(burst.size()));
  ASSERT_EQ(out.n_tx_ports, 1);
  ASSERT_EQ(out.tx[kModem].n, 14);
  ASSERT_EQ(out.punt.n, 6);
  std::vector<size_t> want, got;
  for (size_t i = 0; i < 20; ++i)
    if (i % 3 != 2) want.push_back(14 + (i % 3 == 0 ? 60 : 40) + i);
  for (uint16_t i = 0; i < out.tx[kModem].n; ++i) got.push_back(out.tx[kModem].pkts[i]->data_len);
  EXPECT_EQ(got, want);
  for (rte_mbuf* m : burst) rte_pktmbuf_free(m);
}

// The burst that crosses a limit is still forwarded; from the next burst on, everything through
// the port is punted (overshoot: at most that one burst), both directions, until disarmed.
TEST_F(GoldenTest, DataLimitPuntsFromTheBurstAfterTheCrossing) {
  auto burst_of = [](int n, const PacketBuilder& b) {
    std::vector<rte_mbuf*> v;
    for (int i = 0; i < n; ++i) v.push_back(to_mbuf(b.build()));
    return v;
  };
  auto run = [&](uint8_t port, std::vector<rte_mbuf*>& v) -> EngineOutput& {
    return h->run(port, v.data(), static_cast<uint16_t>(v.size()));
  };
  h->limits->arm(kModem, 1000, 0);
  auto b1 = burst_of(5, up4().tcp(kCport, 80).payload(100));  // 5 x 140 IP bytes
  EXPECT_EQ(run(kWifi, b1).tx[kModem].n, 5);
  EXPECT_EQ(h->limits->used(kModem), 700u);
  EXPECT_FALSE(h->limits->is_blocked(kModem));
  auto b2 = burst_of(5, up4().tcp(kCport, 80).payload(100));
  EXPECT_EQ(run(kWifi, b2).tx[kModem].n, 5);  // read the limit before crossing it
  EXPECT_TRUE(h->limits->is_blocked(kModem));
  EXPECT_EQ(h->limits->used(kModem), 1400u);  // the overshoot: one burst

  auto b3 = burst_of(3, up4().tcp(kCport, 80).payload(100));
  EngineOutput& o3 = run(kWifi, b3);
  ASSERT_EQ(o3.punt.n, 3);
  EXPECT_EQ(o3.n_tx_ports, 0);
  EXPECT_EQ(o3.punt.reasons[0], Reason::data_limit);
  EXPECT_EQ(h->limits->used(kModem), 1400u);  // punted upstream traffic is charged when injected

  auto b4 = burst_of(2, down4().tcp(80, kNatPort).payload(60));
  EngineOutput& o4 = run(kModem, b4);
  ASSERT_EQ(o4.punt.n, 2);
  EXPECT_EQ(o4.punt.reasons[1], Reason::data_limit);
  EXPECT_EQ(h->limits->used(kModem), 1400u + 2 * 100);  // received bytes count, punted or not

  h->limits->disarm(kModem);
  auto b5 = burst_of(1, up4().tcp(kCport, 80));
  EXPECT_EQ(run(kWifi, b5).tx[kModem].n, 1);
  for (auto* v : {&b1, &b2, &b3, &b4, &b5})
    for (rte_mbuf* m : *v) rte_pktmbuf_free(m);
}

TEST_F(GoldenTest, DataLimitOfZeroBlocksAtOnce) {
  h->limits->arm(kModem, 0, 0);
  rte_mbuf* m = to_mbuf(up4().tcp(kCport, 80).build());
  EngineOutput& out = h->run(kWifi, &m, 1);
  ASSERT_EQ(out.punt.n, 1);
  EXPECT_EQ(out.punt.reasons[0], Reason::data_limit);
  rte_pktmbuf_free(m);
  // Limits on other ports leave this one alone.
  h->limits->disarm(kModem);
  h->limits->arm(kUsb, 0, 0);
  m = to_mbuf(up4().tcp(kCport, 80).build());
  EXPECT_EQ(h->run(kWifi, &m, 1).tx[kModem].n, 1);
  rte_pktmbuf_free(m);
}

}  // namespace
}  // namespace tp::test
