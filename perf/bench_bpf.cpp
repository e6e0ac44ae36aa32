// Per-packet cost of the kernel engine's programs (tc and XDP) for the golden cases, next to the
// DPDK engine's for the same frames, in one run (issue #13).
//
// BPF: BPF_PROG_TEST_RUN with `repeat` (Katran's perf fixtures): the kernel times the loop of
// repetitions itself, so the syscall and the skb/xdp_buff set-up fall outside the figure, and
// returns whole nanoseconds per repetition (truncated). The golden state and the ping-pong flows
// of ping_pong.hpp make every repetition take the case's path; the benchmark proves it from the
// engine's counters (each repetition forwards one packet out of the case's port, or counts the
// case's reason, and nothing else is counted) and fails otherwise. DPDK: Engine::process on bursts
// of 32 copies of the same frame, TSC cycles inside the call, as bench_engine measures it (the
// copy of the frames into the mbufs stays outside).
//
// After the benchmarks, a table: per case, ns and cycles per packet (at the TSC rate) for tc, XDP
// and DPDK, and the BPF/DPDK ratios; medians when run with --benchmark_repetitions. The BPF
// benchmarks need root and a network namespace of their own; without them only DPDK runs, and
// the program says why.
#include <benchmark/benchmark.h>
#include <rte_cycles.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "bpf_rig.hpp"
#include "dpdk_env.hpp"
#include "engine_harness.hpp"
#include "ping_pong.hpp"

namespace tp::test {
namespace {

constexpr uint32_t kRepeat = 200;
static_assert(kRepeat <= kMaxRepeat);
constexpr uint16_t kBurst = 32;

enum Eng { kTc, kXdp, kDpdk, kEngines };
constexpr const char* kEngNames[kEngines] = {"tc", "xdp", "dpdk"};

// A representative set of punts: the common reasons, from each parse stage.
const std::vector<std::string> kPunts = {
    "unknown flow",
    "unknown ipv6 flow",
    "tcp SYN",
    "ipv4 more fragments",
    "ipv4 ttl 1",
    "ipv4 options",
    "ipv6 hop-by-hop",
    "larger than the modem MTU",
    "icmp destination unreachable",
    "arp request",
    "frame for another host",
    "to the box over ipv4",
    "bad ipv4 header checksum",
};

struct Globals {
  std::vector<BenchCase> cases;
  std::unique_ptr<EngineHarness> dpdk;
  std::unique_ptr<BpfRig> rig;
  double tsc_hz = 0;
  std::map<std::string, std::pair<size_t, Eng>> by_name;  // benchmark name -> case, engine
  std::map<std::pair<size_t, Eng>, std::vector<double>> ns_per_pkt, median_ns;
};
Globals g;

std::string slug(const std::string& name) {
  std::string s;
  for (char c : name) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (alnum)
      s += c;
    else if (!s.empty() && s.back() != '_')
      s += '_';
  }
  while (!s.empty() && s.back() == '_') s.pop_back();
  return s;
}

void report(benchmark::State& state, double ns) {
  state.counters["ns/pkt"] = ns;
  state.counters["cycles/pkt"] = ns * g.tsc_hz / 1e9;
}

uint64_t fwd_tx_total(FastPath& fp) {
  uint64_t n = 0;
  for (uint8_t p = 0; p < kMaxPorts; ++p) n += fp.port_counts(p).fwd_tx_packets;
  return n;
}

// Before timing: one run must give the golden output (MACs aside) and two runs the input back.
// tc's twice is not compared: the program notes a tag it pushes into skb->vlan_tci in skb->cb[0]
// for test runs, and a later repetition that pops it leaves the note there.
std::string check_bpf(const BenchCase& c, BpfRig::Mode mode) {
  const BpfRig::Result& once = g.rig->run(mode, c.in_port, c.frame, 1);
  if (once.err) return "test run failed: " + std::string(std::strerror(once.err));
  if (!c.out_port) {
    if (!BpfRig::punted(mode, once.verdict)) return "not punted";
    if (once.out != c.frame) return "punted frame changed";
    return "";
  }
  if (!BpfRig::forwarded(mode, once.verdict)) return "not forwarded";
  if (once.out != c.once)
    return "one run: not the golden output\n got  " + hex(once.out) + "\n want " + hex(c.once);
  if (mode == BpfRig::Mode::xdp) {
    const BpfRig::Result& twice = g.rig->run(mode, c.in_port, c.frame, 2);
    if (twice.err || !BpfRig::forwarded(mode, twice.verdict) || twice.out != c.twice)
      return "two runs: not the input back\n got  " + hex(twice.out) + "\n want " + hex(c.twice);
  }
  return "";
}

void BM_Bpf(benchmark::State& state, size_t ci, Eng eng) {
  const BenchCase& c = g.cases[ci];
  const BpfRig::Mode mode = eng == kXdp ? BpfRig::Mode::xdp : BpfRig::Mode::tc;
  if (std::string why = check_bpf(c, mode); !why.empty()) {
    std::fprintf(stderr, "%s (%s): %s\n", c.name.c_str(), kEngNames[eng], why.c_str());
    state.SkipWithError(why.substr(0, why.find('\n')).c_str());
    return;
  }
  FastPath& fp = g.rig->engine();
  const uint64_t tx0 = c.out_port ? fp.port_counts(*c.out_port).fwd_tx_packets : 0;
  const uint64_t all_tx0 = fwd_tx_total(fp);
  const ReasonTotals r0 = fp.reasons();
  uint64_t ns = 0;
  for (auto _ : state) {
    const BpfRig::Result& r = g.rig->run(mode, c.in_port, c.frame, kRepeat);
    const bool ok =
        c.out_port ? BpfRig::forwarded(mode, r.verdict) : BpfRig::punted(mode, r.verdict);
    if (r.err || !ok) {
      state.SkipWithError(r.err ? "test run failed" : "unexpected verdict");
      break;
    }
    ns += uint64_t{r.duration_ns} * kRepeat;
    state.SetIterationTime(static_cast<double>(r.duration_ns) * kRepeat * 1e-9);
  }
  if (state.error_occurred()) return;
  // Every repetition took the case's path, and only that.
  const uint64_t runs = state.iterations() * kRepeat;
  const ReasonTotals r1 = fp.reasons();
  uint64_t reasons = 0;
  for (size_t i = 0; i < kReasonCount; ++i) reasons += r1[i] - r0[i];
  const uint64_t all_tx = fwd_tx_total(fp) - all_tx0;
  bool path_ok;
  if (c.out_port)
    path_ok =
        fp.port_counts(*c.out_port).fwd_tx_packets - tx0 == runs && all_tx == runs && reasons == 0;
  else
    path_ok = r1[static_cast<size_t>(c.reason)] - r0[static_cast<size_t>(c.reason)] == runs &&
              reasons == runs && all_tx == 0;
  if (!path_ok) {
    state.SkipWithError("the counters say not every repetition took the case's path");
    return;
  }
  state.SetItemsProcessed(static_cast<int64_t>(runs));
  report(state, static_cast<double>(ns) / static_cast<double>(runs));
}

std::string check_dpdk(const BenchCase& c) {
  static const char* const kPortNames[] = {"modem", "wifi", "usb"};
  Bytes once, twice;
  const std::string where = g.dpdk->send(c.in_port, c.frame, &once);
  if (!c.out_port) return where == name(c.reason) ? "" : "punted as " + where;
  if (where != kPortNames[*c.out_port]) return "went to " + where;
  if (once != c.once) return "one pass: not the golden output";
  g.dpdk->send(c.in_port, once, &twice);
  if (twice != c.twice) return "two passes: not the input back";
  return "";
}

void BM_Dpdk(benchmark::State& state, size_t ci) {
  const BenchCase& c = g.cases[ci];
  if (std::string why = check_dpdk(c); !why.empty()) {
    state.SkipWithError(why.c_str());
    return;
  }
  std::array<rte_mbuf*, kBurst> mbufs{};
  for (auto& m : mbufs) m = rte_pktmbuf_alloc(mbuf_pool());
  uint64_t cycles = 0;
  bool ok = true;
  for (auto _ : state) {
    for (rte_mbuf* m : mbufs) {
      m->data_off = RTE_PKTMBUF_HEADROOM;
      m->data_len = m->pkt_len = static_cast<uint32_t>(c.frame.size());
      std::memcpy(rte_pktmbuf_mtod(m, void*), c.frame.data(), c.frame.size());
    }
    const uint64_t t0 = rte_rdtsc();
    EngineOutput& out = g.dpdk->run(c.in_port, mbufs.data(), kBurst);
    const uint64_t dt = rte_rdtsc() - t0;
    cycles += dt;
    state.SetIterationTime(static_cast<double>(dt) / g.tsc_hz);
    if (c.out_port) {
      ok &= out.tx[*c.out_port].n == kBurst;
    } else {
      ok &= out.punt.n + out.drop.n == kBurst;
      for (uint16_t i = 0; i < out.punt.n; ++i) ok &= out.punt.reasons[i] == c.reason;
      for (uint16_t i = 0; i < out.drop.n; ++i) ok &= out.drop.reasons[i] == c.reason;
    }
  }
  for (rte_mbuf* m : mbufs) rte_pktmbuf_free(m);
  if (!ok) {
    state.SkipWithError("not every packet took the case's path");
    return;
  }
  const uint64_t packets = state.iterations() * kBurst;
  state.SetItemsProcessed(static_cast<int64_t>(packets));
  report(state, static_cast<double>(cycles) / g.tsc_hz * 1e9 / static_cast<double>(packets));
}

// A keepalive round's read of every flow's use (issue #14): 64k flows, both directions, read with
// FastPath::read_usage (the flow map dumped in batches) and with one usage() lookup per key, on an
// engine of its own sized for them. Root only, as the programs.
constexpr uint32_t kUsageFlows = 65536;
struct UsageState {
  std::unique_ptr<BpfFastPath> fp;
  std::vector<FlowKey4> keys;
  std::vector<std::optional<FlowUsage>> out;
  std::string why;  // why the engine could not be made
};
UsageState g_usage;

UsageState& usage_state() {
  UsageState& s = g_usage;
  if (s.fp || !s.why.empty()) return s;
  std::string& why = s.why;
  s.fp = BpfFastPath::create(BpfOptions{2 * kUsageFlows, 16}, why);
  if (!s.fp) return s;
  for (uint32_t i = 0; i < kUsageFlows; ++i) {
    const uint16_t lo = static_cast<uint16_t>(i), hi = static_cast<uint16_t>(i >> 16);
    FlowPlan4 o{}, r{};
    o.match = {0x0a000001u + hi, 0x0b000001u, lo, 80, 6, 1, 0};
    r.match = {0x0b000001u, 0x0c000001u + hi, 80, lo, 6, 0, 0};
    if (s.fp->install(o, r) != 0) {
      why = "cannot install the flows";
      s.fp.reset();
      return s;
    }
    s.keys.push_back(o.match);
    s.keys.push_back(r.match);
  }
  s.out.resize(s.keys.size());
  return s;
}

void BM_ReadUsage(benchmark::State& state, bool batched) {
  UsageState& s = usage_state();
  if (!s.fp) {
    state.SkipWithError(s.why.c_str());
    return;
  }
  for (auto _ : state) {
    if (batched) {
      s.fp->read_usage(std::span<const FlowKey4>(s.keys), std::span(s.out));
    } else {
      for (size_t i = 0; i < s.keys.size(); ++i) s.out[i] = s.fp->usage(s.keys[i]);
    }
    benchmark::DoNotOptimize(s.out.data());
  }
  size_t found = 0;
  for (const auto& u : s.out) found += u.has_value();
  if (found != s.keys.size()) state.SkipWithError("not every key was found");
  state.counters["keys"] = static_cast<double>(s.keys.size());
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * s.keys.size()));
}

// The console output, and each benchmark's ns/pkt (or its median aggregate) for the table.
class Collector : public benchmark::ConsoleReporter {
 public:
  // Colour only on a terminal: the library decides that for its own reporter, not for ours, and
  // scripts/test.sh reads the lines from a file.
  Collector() : ConsoleReporter(isatty(STDOUT_FILENO) ? OO_Color : OO_None) {}
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      if (r.error_occurred) continue;
      auto it = g.by_name.find(r.run_name.function_name);
      auto ns = r.counters.find("ns/pkt");
      if (it == g.by_name.end() || ns == r.counters.end()) continue;
      if (r.run_type == Run::RT_Iteration)
        g.ns_per_pkt[it->second].push_back(ns->second.value);
      else if (r.aggregate_name == "median")
        g.median_ns[it->second].push_back(ns->second.value);
    }
  }
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void print_table() {
  std::printf(
      "\nPer packet, side by side (TSC %.3f GHz; BPF: test-run repeat %u, ns truncated by the "
      "kernel; DPDK: bursts of %u):\n\n",
      g.tsc_hz / 1e9, kRepeat, kBurst);
  std::printf(
      "| case | tc ns | tc cycles | XDP ns | XDP cycles | DPDK ns | DPDK cycles | tc/DPDK | "
      "XDP/DPDK |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  for (size_t ci = 0; ci < g.cases.size(); ++ci) {
    double ns[kEngines];
    bool any = false;
    for (int e = 0; e < kEngines; ++e) {
      const auto key = std::make_pair(ci, static_cast<Eng>(e));
      auto m = g.median_ns.find(key);
      auto it = g.ns_per_pkt.find(key);
      ns[e] = m != g.median_ns.end()                            ? median(m->second)
              : it != g.ns_per_pkt.end() && !it->second.empty() ? median(it->second)
                                                                : -1;
      any |= ns[e] >= 0;
    }
    if (!any) continue;
    auto cell = [](double v, int decimals) {
      char b[32];
      if (v < 0) return std::string("—");
      std::snprintf(b, sizeof b, "%.*f", decimals, v);
      return std::string(b);
    };
    auto ratio = [&](double a) {
      return a < 0 || ns[kDpdk] <= 0 ? std::string("—") : cell(a / ns[kDpdk], 1) + "×";
    };
    const BenchCase& c = g.cases[ci];
    std::printf("| %s%s | %s | %s | %s | %s | %s | %s | %s | %s |\n", c.name.c_str(),
                c.out_port ? "" : (" (punt: " + std::string(name(c.reason)) + ")").c_str(),
                cell(ns[kTc], 1).c_str(), cell(ns[kTc] * g.tsc_hz / 1e9, 0).c_str(),
                cell(ns[kXdp], 1).c_str(), cell(ns[kXdp] * g.tsc_hz / 1e9, 0).c_str(),
                cell(ns[kDpdk], 1).c_str(), cell(ns[kDpdk] * g.tsc_hz / 1e9, 0).c_str(),
                ratio(ns[kTc]).c_str(), ratio(ns[kXdp]).c_str());
  }
}

int run(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  init_eal(512);
  g.tsc_hz = static_cast<double>(rte_get_tsc_hz());
  std::string error;
  g.cases = bench_cases(kPunts, error);
  if (g.cases.empty()) {
    std::fprintf(stderr, "bench_bpf: %s\n", error.c_str());
    return 1;
  }
  g.dpdk = std::make_unique<EngineHarness>();
  if (std::string e = install_bench_state(*g.dpdk->fast_path); !e.empty()) {
    std::fprintf(stderr, "bench_bpf: DPDK engine: %s\n", e.c_str());
    return 1;
  }
  std::string why;
  g.rig = BpfRig::create(why);
  if (!g.rig) {
    std::printf("bench_bpf: the BPF programs are not measured: %s\n", why.c_str());
  } else if (std::string e = install_bench_state(g.rig->engine()); !e.empty()) {
    std::fprintf(stderr, "bench_bpf: BPF engine: %s\n", e.c_str());
    return 1;
  } else if (!g.rig->has_xdp()) {
    std::printf("bench_bpf: XDP is not measured: %s\n", g.rig->xdp_unavailable().c_str());
  }

  for (size_t ci = 0; ci < g.cases.size(); ++ci) {
    const std::string s = slug(g.cases[ci].name);
    auto add = [&](Eng eng, auto fn) {
      const std::string name = std::string("BM_") + kEngNames[eng] + "/" + s;
      g.by_name[name] = {ci, eng};
      benchmark::RegisterBenchmark(name.c_str(), fn)
          ->UseManualTime()
          ->Unit(benchmark::kMicrosecond);
    };
    if (g.rig) {
      add(kTc, [ci](benchmark::State& st) { BM_Bpf(st, ci, kTc); });
      if (g.rig->has_xdp()) add(kXdp, [ci](benchmark::State& st) { BM_Bpf(st, ci, kXdp); });
    }
    add(kDpdk, [ci](benchmark::State& st) { BM_Dpdk(st, ci); });
  }
  if (g.rig) {
    benchmark::RegisterBenchmark("BM_ReadUsage/batched", [](benchmark::State& st) {
      BM_ReadUsage(st, true);
    })->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark("BM_ReadUsage/per_key", [](benchmark::State& st) {
      BM_ReadUsage(st, false);
    })->Unit(benchmark::kMillisecond);
  }
  Collector collector;
  benchmark::RunSpecifiedBenchmarks(&collector);
  benchmark::Shutdown();
  print_table();
  g_usage.fp.reset();
  g.rig.reset();
  g.dpdk.reset();
  return 0;
}

}  // namespace
}  // namespace tp::test

int main(int argc, char** argv) { return tp::test::run(argc, argv); }
