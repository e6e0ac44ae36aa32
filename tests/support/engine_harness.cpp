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
  counters = std::make_unique<WorkerCounters>();
  engine = std::make_unique<Engine>(
      Engine::Tables{v4.get(), v6.get(), topology.get(), limits.get(), rules6.get()}, *counters);
  fast_path = std::make_unique<DpdkFastPath>(
      DpdkFastPath::Tables{v4.get(), v6.get(), rules6.get(), topology.get(), limits.get()});
  fast_path->add_counters(counters.get());
  install_lab_topology(*fast_path);
}

EngineHarness::~EngineHarness() {
  fast_path.reset();
  engine.reset();
  v4.reset();
  v6.reset();
  rules6.reset();
  topology.reset();
  rte_free(qsv);
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
