// libFuzzer target: arbitrary bytes become a burst of frames (split on a length prefix) received
// on an arbitrary port, through the parser and the engine with real offloaded flows. Any crash,
// sanitizer report or lost packet is a finding. Input: [port (bits 0-1) | repair (bit 2)] then
// [length][frame bytes]... With "repair", IPv4 header checksums are fixed after mutation so the
// fuzzer explores what lies behind the checksum check.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "checksum.hpp"
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

void repair_ipv4_checksum(Bytes& f) {
  size_t l3 = 14;
  if (f.size() >= 18 && f[12] == 0x81 && f[13] == 0x00) l3 = 18;
  if (f.size() < l3 + 20 || f[l3 - 2] != 0x08 || f[l3 - 1] != 0x00) return;
  const size_t hlen = (f[l3] & 0x0f) * 4u;
  if (hlen < 20 || f.size() < l3 + hlen) return;
  f[l3 + 10] = f[l3 + 11] = 0;
  const uint16_t c = tp::csum::finish(tp::csum::sum_bytes(f.data() + l3, hlen));
  f[l3 + 10] = static_cast<uint8_t>(c >> 8);
  f[l3 + 11] = static_cast<uint8_t>(c);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t port = data[0] & 3;
  const bool repair = data[0] & 4;
  ++data;
  --size;
  std::vector<rte_mbuf*> burst;
  while (size > 1 && burst.size() < kMaxBurst) {
    const size_t take = std::min<size_t>(data[0], size - 1);
    Bytes frame(data + 1, data + 1 + take);
    if (repair) repair_ipv4_checksum(frame);
    burst.push_back(to_mbuf(frame));
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
