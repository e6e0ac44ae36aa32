// libFuzzer target: arbitrary bytes become a burst of frames (split on a length prefix) received
// on an arbitrary port, through the parser and the engine with real offloaded flows. Any crash,
// sanitizer report or lost packet is a finding.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "dpdk_env.hpp"
#include "engine_harness.hpp"

using namespace tp;
using namespace tp::test;

namespace {
EngineHarness* g_h = nullptr;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  init_eal(256);
  g_h = new EngineHarness();
  using namespace lab;
  g_h->add_masquerade4(6, kWifiClient, 40000, kServer, 80, 61000);
  g_h->add_masquerade4(17, kWifiClient, 5353, kServer, 53, 61001);
  g_h->add_masquerade4(1, kWifiClient, 0x1234, kServer, 0, 0x4321);
  g_h->add_route6(6, kWifiClient6, 40000, kServer6, 443);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t port = data[0] % 4;
  ++data;
  --size;
  std::vector<rte_mbuf*> burst;
  while (size > 0 && burst.size() < kMaxBurst) {
    const size_t len = std::min<size_t>(data[0], size - 1) + (size > 1 ? 0 : 0);
    const size_t take = std::min(size - 1, len);
    burst.push_back(to_mbuf(Bytes(data + 1, data + 1 + take)));
    data += 1 + take;
    size -= 1 + take;
  }
  EngineOutput& out = g_h->run(port, burst.data(), static_cast<uint16_t>(burst.size()));
  size_t landed = out.punt.n + out.drop.n;
  for (uint16_t i = 0; i < out.n_tx_ports; ++i) landed += out.tx[out.tx_ports[i]].n;
  if (landed != burst.size()) {
    std::fprintf(stderr, "lost packets: %zu in, %zu out\n", burst.size(), landed);
    std::abort();
  }
  for (rte_mbuf* m : burst) rte_pktmbuf_free(m);
  return 0;
}
