#include "engine_harness.hpp"

#include "dpdk_env.hpp"

#include <rte_malloc.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace tp::test {
namespace {

std::atomic<int> g_instance{0};

EtherAddr ether(const std::string& s) {
  EtherAddr a;
  const Mac m = mac(s);
  std::memcpy(a.addr_bytes, m.data(), 6);
  return a;
}

void set_port(PortInfo& p, const std::string& mac_text, const std::string& v4,
              const std::string& v6, uint16_t mtu) {
  p.enabled = true;
  p.mac = ether(mac_text);
  p.mtu = mtu;
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

EngineHarness::EngineHarness(uint32_t capacity, uint32_t reader_threads) {
  using namespace lab;
  const size_t sz = rte_rcu_qsbr_get_memsize(reader_threads);
  qsv = static_cast<rte_rcu_qsbr*>(rte_zmalloc("tp_test_qsv", sz, RTE_CACHE_LINE_SIZE));
  if (!qsv || rte_rcu_qsbr_init(qsv, reader_threads) != 0) {
    std::fprintf(stderr, "harness: cannot create the QSBR variable\n");
    std::abort();
  }
  const int id = g_instance++;
  v4 = FlowTable4::create(("tp4_" + std::to_string(id)).c_str(), capacity, qsv, SOCKET_ID_ANY);
  v6 = FlowTable6::create(("tp6_" + std::to_string(id)).c_str(), capacity, qsv, SOCKET_ID_ANY);
  rules6 = RuleTable6::create(("tpr6_" + std::to_string(id)).c_str(), 1024, qsv, SOCKET_ID_ANY);
  if (!v4 || !v6 || !rules6) {
    std::fprintf(stderr, "harness: cannot create flow tables of %u entries\n", capacity);
    std::abort();
  }
  topology = std::make_unique<TopologyPublisher>(qsv);
  auto t = topology->edit();
  set_port(t->ports[kModem], kModemMac, kModemAddr, kModemAddr6, kModemMtu);
  set_port(t->ports[kWifi], kWifiMac, kWifiAddr, kWifiAddr6, 1500);
  set_port(t->ports[kUsb], kUsbMac, "192.168.60.1", "2001:db8:60::1", 1500);
  set_nexthop(t->nexthops[kNhGateway], kModem, kModemMac, kGatewayMac, kModemMtu);
  set_nexthop(t->nexthops[kNhWifiClient], kWifi, kWifiMac, kWifiClientMac, 1500);
  set_nexthop(t->nexthops[kNhUsbClient], kUsb, kUsbMac, kUsbClientMac, 1500);
  set_nexthop(t->nexthops[kNhWifiVlan], kWifi, kWifiMac, kWifiClientMac, 1500, 20);
  set_nexthop(t->nexthops[kNhGatewayVlan], kModem, kModemMac, kGatewayMac, kModemMtu, 30);
  topology->publish(std::move(t));
  counters = std::make_unique<WorkerCounters>();
  engine = std::make_unique<Engine>(
      Engine::Tables{v4.get(), v6.get(), topology.get(), limits.get(), rules6.get()}, *counters);
}

EngineHarness::~EngineHarness() {
  engine.reset();
  v4.reset();
  v6.reset();
  rules6.reset();
  topology.reset();
  rte_free(qsv);
}

int EngineHarness::add_masquerade4(uint8_t proto, const std::string& client, uint16_t cport,
                                   const std::string& server, uint16_t sport, uint16_t nat_port,
                                   uint8_t down_port, uint16_t down_nh, uint16_t up_nh) {
  const bool icmp = proto == 1;
  // ICMP echo: ports carry (identifier, type); the reply's identifier is the mapped one.
  FlowKey4 orig{ip4(client), ip4(server), be16(cport), be16(icmp ? 8 : sport), proto, down_port, 0};
  FlowKey4 reply{ip4(server),
                 ip4(lab::kModemAddr),
                 be16(icmp ? nat_port : sport),
                 be16(icmp ? 0 : nat_port),
                 proto,
                 lab::kModem,
                 0};
  FlowAction up =
      make_nat44_action(orig, Rewrite::snat, ip4(lab::kModemAddr), be16(nat_port), up_nh);
  FlowAction down = make_nat44_action(reply, Rewrite::dnat, ip4(client), be16(cport), down_nh);
  return v4->insert(orig, up, reply, down);
}

int EngineHarness::add_route6(uint8_t proto, const std::string& client, uint16_t cport,
                              const std::string& server, uint16_t sport) {
  const bool icmp = proto == 58;
  FlowKey6 orig{
      ip6(client), ip6(server), be16(cport), be16(icmp ? 128 : sport), proto, lab::kWifi, 0};
  FlowKey6 reply{ip6(server),
                 ip6(client),
                 be16(icmp ? cport : sport),
                 be16(icmp ? 129 : cport),
                 proto,
                 lab::kModem,
                 0};
  FlowAction up, down;
  up.set_nexthop(lab::kNhGateway);
  down.set_nexthop(lab::kNhWifiClient);
  return v6->insert(orig, up, reply, down);
}

EngineOutput& EngineHarness::run(uint8_t in_port, rte_mbuf** pkts, uint16_t n, uint32_t now) {
  out.clear();
  engine->process(in_port, pkts, n, now, out);
  return out;
}

std::string EngineHarness::send(uint8_t in_port, const Bytes& frame, Bytes* out_frame) {
  static const char* const kPortNames[] = {"modem", "wifi", "usb"};
  rte_mbuf* m = to_mbuf(frame);
  EngineOutput& o = run(in_port, &m, 1);
  std::string where = "nowhere";
  if (o.punt.n) where = name(o.punt.reasons[0]);
  if (o.drop.n) where = name(o.drop.reasons[0]);
  for (uint8_t p : {lab::kModem, lab::kWifi, lab::kUsb}) {
    if (!o.tx[p].n) continue;
    where = kPortNames[p];
    if (out_frame) *out_frame = from_mbuf(o.tx[p].pkts[0]);
  }
  rte_pktmbuf_free(m);
  return where;
}

}  // namespace tp::test
