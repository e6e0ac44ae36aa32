// Engine throughput on one core: bursts of 32 64-byte frames (60 bytes + FCS), uniformly random
// over N established IPv4 NAPT flows, upstream direction (SNAT + TTL + MACs + checksums).
//
// Each burst first copies the flows' frame templates into 32 reused mbufs, standing in for the
// NIC's DMA; BM_TemplateCopyOnly measures that copy alone. Reported: items_per_second (packets
// per second including the copy), cycles/pkt(engine) and Mpps(engine) (TSC cycles inside
// Engine::process only), and bytes/flow (both directions: everything the flow table took from
// the DPDK heap, divided by N).
#include <benchmark/benchmark.h>
#include <rte_cycles.h>

#include <cstring>
#include <random>
#include <vector>

#include "dpdk_env.hpp"
#include "engine_harness.hpp"

namespace tp::test {
namespace {

constexpr uint16_t kBurst = 32;
constexpr size_t kFrameLen = 60;
constexpr size_t kSequence = 1 << 20;  // random flow indices, cycled

struct Fixture {
  explicit Fixture(uint32_t flows) : n(flows) {
    // A table sized for exactly these flows: every one of its entries in use.
    h = std::make_unique<EngineHarness>(2 * flows);
    templates.resize(size_t{flows} * kFrameLen);
    for (uint32_t i = 0; i < flows; ++i) {
      const uint32_t client = 0x0a000000u + i;  // 10.0.0.0/8: one client address per flow
      const std::string client_s =
          std::to_string(client >> 24) + "." + std::to_string(client >> 16 & 255) + "." +
          std::to_string(client >> 8 & 255) + "." + std::to_string(client & 255);
      // NAT ports repeat every 60000 flows; the server address changes then, keeping replies
      // unique.
      const uint32_t server = 0xcb007100u + i / 60000;
      const std::string server_s =
          "203.0." + std::to_string(server >> 8 & 255) + "." + std::to_string(server & 255);
      const uint16_t nat_port = static_cast<uint16_t>(1024 + i % 60000);
      if (h->add_masquerade4(17, client_s, 40000, server_s, 443, nat_port) != 0) {
        ok = false;
        return;
      }
      const Bytes f = PacketBuilder()
                          .eth(lab::kWifiClientMac, lab::kWifiMac)
                          .ipv4(client_s, server_s)
                          .udp(40000, 443)
                          .payload(kFrameLen - 42)
                          .build();
      std::memcpy(&templates[size_t{i} * kFrameLen], f.data(), kFrameLen);
    }
    std::mt19937 rng(42);
    sequence.resize(kSequence);
    for (auto& s : sequence) s = rng() % flows;
    for (auto& m : mbufs) m = rte_pktmbuf_alloc(mbuf_pool());
  }
  ~Fixture() {
    for (auto* m : mbufs) rte_pktmbuf_free(m);
  }

  void fill(size_t& cursor) {
    for (uint16_t j = 0; j < kBurst; ++j) {
      rte_mbuf* m = mbufs[j];
      m->data_off = RTE_PKTMBUF_HEADROOM;
      m->data_len = m->pkt_len = kFrameLen;
      std::memcpy(rte_pktmbuf_mtod(m, void*), &templates[size_t{sequence[cursor]} * kFrameLen],
                  kFrameLen);
      cursor = (cursor + 1) & (kSequence - 1);
    }
  }

  uint32_t n;
  bool ok = true;
  std::unique_ptr<EngineHarness> h;
  std::vector<uint8_t> templates;
  std::vector<uint32_t> sequence;
  std::array<rte_mbuf*, kBurst> mbufs{};
};

void BM_EngineNat44(benchmark::State& state) {
  init_eal(4096);
  Fixture fx(static_cast<uint32_t>(state.range(0)));
  if (!fx.ok) {
    state.SkipWithError("could not install the flows");
    return;
  }
  size_t cursor = 0;
  uint64_t forwarded = 0, cycles = 0;
  for (auto _ : state) {
    fx.fill(cursor);
    const uint64_t t0 = rte_rdtsc();
    EngineOutput& out = fx.h->run(lab::kWifi, fx.mbufs.data(), kBurst);
    cycles += rte_rdtsc() - t0;
    forwarded += out.tx[lab::kModem].n;
  }
  const uint64_t packets = state.iterations() * kBurst;
  if (forwarded != packets) state.SkipWithError("not every packet took the fast path");
  state.SetItemsProcessed(static_cast<int64_t>(packets));
  const double cpp = static_cast<double>(cycles) / static_cast<double>(packets);
  state.counters["cycles/pkt(engine)"] = cpp;
  state.counters["Mpps(engine)"] = static_cast<double>(rte_get_tsc_hz()) / cpp / 1e6;
  state.counters["bytes/flow"] = static_cast<double>(fx.h->v4->memory_bytes()) / fx.n;
  state.counters["flows"] = fx.n;
  const auto ps = fx.h->v4->probe_stats();
  state.counters["beyond_home%"] = 100.0 * ps.beyond_home / ps.keys;
  state.counters["max_distance"] = ps.max_distance;
}
BENCHMARK(BM_EngineNat44)
    ->Arg(1000)
    ->Arg(64 * 1024)
    ->Arg(1000 * 1000)
    ->Unit(benchmark::kNanosecond);

void BM_TemplateCopyOnly(benchmark::State& state) {
  init_eal(4096);
  Fixture fx(static_cast<uint32_t>(state.range(0)));
  size_t cursor = 0;
  for (auto _ : state) {
    fx.fill(cursor);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kBurst));
}
BENCHMARK(BM_TemplateCopyOnly)->Arg(1000)->Arg(1000 * 1000)->Unit(benchmark::kNanosecond);

}  // namespace
}  // namespace tp::test

BENCHMARK_MAIN();
