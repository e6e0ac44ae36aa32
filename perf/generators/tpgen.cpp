// tpgen: the perf lab's traffic generator and receiver, on DPDK ports (AF_PACKET or AF_XDP on the
// harness's veths), one lcore for both. It sends UDP over N flows (IPv4 or IPv6; 64-byte, IMIX or
// 1500-byte frames) from the "client" port at a paced rate, receives what the forwarder under test
// delivers on the "server" port, and measures loss and latency (a TSC stamp in every payload, read
// back on the same core). Modes:
//   warmup  every flow twice, 2.5 s apart, and the server port reflects each packet back, so the
//           kernel's conntrack sees two-way traffic and assures the flows (then they can be
//           offloaded);
//   fixed   one trial at --rate;
//   search  RFC 2544 style: the NDR (no loss) and the PDR (loss <= --pdr-loss) by binary search
//           over the trial rate, --trials times (median reported), then latency at 50% and 90%
//           of the PDR.
// It prints one JSON object on stdout.
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_udp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "udp_frame.hpp"

namespace {

using tp::perf::kClientPortBase;
using tp::perf::kMagic;

constexpr uint16_t kBurst = 32;

struct Options : tp::perf::FrameOptions {
  std::string mode = "fixed";
  double rate = 100000;   // packets/s
  double max_rate = 0;    // search: upper bound (0: measure what the generator can send)
  double duration = 1.0;  // seconds per trial
  int trials = 1;
  double pdr_loss = 0.005;
  double precision = 0.02;  // search stops when hi - lo < precision * hi
};

class Generator {
 public:
  Generator(const Options& o, rte_mempool* pool, const tp::perf::FrameEnds& ends)
      : o_(o), pool_(pool), ends_(ends) {
    sizes_ = tp::perf::frame_sizes(o.size, o.family);
    hz_ = rte_get_tsc_hz();
  }

  struct Trial {
    uint64_t tx = 0, rx = 0;
    double seconds = 0;
    std::vector<uint32_t> latency_ns;  // sampled
    double loss() const { return tx ? double(tx - std::min(rx, tx)) / double(tx) : 0; }
  };

  // Sends at `rate` for `seconds` (rate 0: as fast as possible), then drains for 100 ms.
  Trial run(double rate, double seconds, bool reflect = false) {
    Trial t;
    const uint64_t start = rte_rdtsc();
    const uint64_t end = start + static_cast<uint64_t>(seconds * hz_);
    const uint64_t drain_end_extra = hz_ / 10;
    uint64_t now = start;
    rte_mbuf* pkts[kBurst];
    while (now < end) {
      uint64_t want = kBurst;
      if (rate > 0) {
        const double due = double(now - start) / double(hz_) * rate;
        want = due > double(t.tx) ? std::min<uint64_t>(kBurst, uint64_t(due) - t.tx) : 0;
      }
      if (want) {
        const uint16_t n = build(pkts, static_cast<uint16_t>(want), now);
        const uint16_t sent = rte_eth_tx_burst(0, 0, pkts, n);
        if (sent < n) rte_pktmbuf_free_bulk(pkts + sent, n - sent);
        t.tx += sent;
      }
      receive(t, reflect);
      now = rte_rdtsc();
    }
    t.seconds = double(now - start) / double(hz_);
    const uint64_t drain_end = now + drain_end_extra;
    while (rte_rdtsc() < drain_end) receive(t, reflect);
    return t;
  }

  // Each flow once (reflected by the server side), paced: before offload every packet takes
  // the forwarder's slow path (for tetherpath the exception path and the kernel), which must not
  // drop the packets that create and assure the flows.
  void sweep_flows(double rate) {
    const uint32_t saved = next_flow_;
    next_flow_ = 0;
    Trial t;
    rte_mbuf* pkts[kBurst];
    const uint64_t start = rte_rdtsc();
    for (uint32_t f = 0; f < o_.flows;) {
      while (double(rte_rdtsc() - start) / double(hz_) * rate < double(f)) receive(t, true);
      const uint16_t n =
          build(pkts, static_cast<uint16_t>(std::min<uint32_t>(kBurst, o_.flows - f)), rte_rdtsc());
      uint16_t sent = 0;
      while (sent < n) {
        sent += rte_eth_tx_burst(0, 0, pkts + sent, n - sent);
        receive(t, true);
      }
      f += n;
    }
    const uint64_t until = rte_rdtsc() + hz_ / 2;
    while (rte_rdtsc() < until) receive(t, true);
    next_flow_ = saved;
  }

  uint64_t hz() const { return hz_; }

 private:
  uint16_t build(rte_mbuf** pkts, uint16_t n, uint64_t stamp) {
    if (rte_pktmbuf_alloc_bulk(pool_, pkts, n) != 0) return 0;
    for (uint16_t i = 0; i < n; ++i) {
      const uint16_t len = sizes_[size_at_++ % sizes_.size()];
      const uint16_t sport = static_cast<uint16_t>(kClientPortBase + next_flow_++ % o_.flows);
      if (next_flow_ >= o_.flows) next_flow_ = 0;
      fill(pkts[i], len, sport, stamp);
    }
    return n;
  }

  void fill(rte_mbuf* m, uint16_t len, uint16_t sport, uint64_t stamp) {
    tp::perf::fill_udp_frame(reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, len)), len, ends_,
                             sport, stamp);
  }

  // Counts our packets on the server port (and the client port, where reflections return);
  // reflects them back when asked (warm-up).
  void receive(Trial& t, bool reflect) {
    rte_mbuf* pkts[kBurst];
    for (uint16_t port = 0; port < 2; ++port) {
      const uint16_t n = rte_eth_rx_burst(port, 0, pkts, kBurst);
      if (!n) continue;
      const uint64_t now = rte_rdtsc();
      uint16_t keep = 0;
      for (uint16_t i = 0; i < n; ++i) {
        uint8_t* p = rte_pktmbuf_mtod(pkts[i], uint8_t*);
        const uint16_t l3 = 14;
        const bool v4 = p[12] == 0x08 && p[13] == 0x00;
        const bool v6 = p[12] == 0x86 && p[13] == 0xdd;
        if ((!v4 && !v6) || pkts[i]->data_len < l3 + (v4 ? 20 : 40) + 20) {
          rte_pktmbuf_free(pkts[i]);
          continue;
        }
        uint8_t* udp = p + l3 + (v4 ? (p[l3] & 0x0f) * 4 : 40);
        uint32_t magic;
        std::memcpy(&magic, udp + 8, 4);
        if (magic != kMagic || port != 1) {
          rte_pktmbuf_free(pkts[i]);
          continue;
        }
        ++t.rx;
        uint64_t sent;
        std::memcpy(&sent, udp + 12, 8);
        if ((t.rx & 15) == 0 && now > sent)
          t.latency_ns.push_back(static_cast<uint32_t>(
              std::min<uint64_t>((now - sent) * 1000000000ull / hz_, UINT32_MAX)));
        if (!reflect) {
          rte_pktmbuf_free(pkts[i]);
          continue;
        }
        swap_for_reply(p, v4, udp);
        pkts[keep++] = pkts[i];
      }
      if (keep) {
        const uint16_t sent = rte_eth_tx_burst(1, 0, pkts, keep);
        if (sent < keep) rte_pktmbuf_free_bulk(pkts + sent, keep - sent);
      }
    }
  }

  // The reply the server would send: MACs, addresses and ports swapped (checksums are
  // invariant under swaps).
  static void swap_for_reply(uint8_t* p, bool v4, uint8_t* udp) {
    uint8_t tmp[16];
    std::memcpy(tmp, p, 6);
    std::memcpy(p, p + 6, 6);
    std::memcpy(p + 6, tmp, 6);
    uint8_t* ip = p + 14;
    const int off = v4 ? 12 : 8, alen = v4 ? 4 : 16;
    std::memcpy(tmp, ip + off, alen);
    std::memcpy(ip + off, ip + off + alen, alen);
    std::memcpy(ip + off + alen, tmp, alen);
    std::memcpy(tmp, udp, 2);
    std::memcpy(udp, udp + 2, 2);
    std::memcpy(udp + 2, tmp, 2);
  }

  Options o_;
  rte_mempool* pool_;
  tp::perf::FrameEnds ends_;
  std::vector<uint16_t> sizes_;
  uint64_t hz_ = 0;
  uint32_t next_flow_ = 0;
  uint64_t size_at_ = 0;
};

double percentile(std::vector<uint32_t> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t i = std::min(v.size() - 1, static_cast<std::size_t>(q * double(v.size())));
  return v[i] / 1000.0;  // microseconds
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::string trial_json(const Generator::Trial& t, double rate) {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "{\"rate\": %.0f, \"tx\": %lu, \"rx\": %lu, \"loss\": %.6f, \"seconds\": %.3f, "
                "\"rx_pps\": %.0f, \"lat_p50_us\": %.1f, \"lat_p99_us\": %.1f, "
                "\"lat_p999_us\": %.1f}",
                rate, t.tx, t.rx, t.loss(), t.seconds, double(t.rx) / t.seconds,
                percentile(t.latency_ns, 0.5), percentile(t.latency_ns, 0.99),
                percentile(t.latency_ns, 0.999));
  return buf;
}

// Highest rate whose trial loss is <= max_loss, by binary search in [0, hi].
double search(Generator& g, const Options& o, double hi, double max_loss, int& steps) {
  ++steps;
  if (g.run(hi, o.duration).loss() <= max_loss) return hi;
  double lo = 0;
  for (int i = 0; i < 12 && hi - lo > o.precision * hi; ++i) {
    const double mid = (lo + hi) / 2;
    ++steps;
    if (g.run(mid, o.duration).loss() <= max_loss)
      lo = mid;
    else
      hi = mid;
  }
  return lo;
}

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: tpgen [EAL args] -- --mode warmup|fixed|search --family 4|6 --flows N "
               "--size 64|imix|1500 --client-mac M --box-mac M --client-ip A --server-ip A "
               "[--rate PPS] [--max-rate PPS] [--duration S] [--trials K] [--pdr-loss F]\n"
               "EAL ports: 0 is the client side (sends), 1 the server side (receives)\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  const int used = rte_eal_init(argc, argv);
  if (used < 0) {
    std::fprintf(stderr, "tpgen: EAL initialisation failed\n");
    return 1;
  }
  argc -= used;
  argv += used;
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) usage();
    const std::string v = argv[++i];
    if (o.take(a, v))
      continue;
    else if (a == "--mode")
      o.mode = v;
    else if (a == "--rate")
      o.rate = std::atof(v.c_str());
    else if (a == "--max-rate")
      o.max_rate = std::atof(v.c_str());
    else if (a == "--duration")
      o.duration = std::atof(v.c_str());
    else if (a == "--trials")
      o.trials = std::max(1, std::atoi(v.c_str()));
    else if (a == "--pdr-loss")
      o.pdr_loss = std::atof(v.c_str());
    else
      usage();
  }
  tp::perf::FrameEnds ends;
  if (rte_eth_dev_count_avail() < 2) usage();
  if (const std::string bad = o.ends(ends); !bad.empty()) {
    std::fprintf(stderr, "tpgen: %s\n", bad.c_str());
    return 2;
  }
  rte_mempool* pool =
      rte_pktmbuf_pool_create("tpgen", 16383, 256, 0, 2048 + RTE_PKTMBUF_HEADROOM, rte_socket_id());
  if (!pool) {
    std::fprintf(stderr, "tpgen: no mbuf pool\n");
    return 1;
  }
  for (uint16_t port = 0; port < 2; ++port) {
    rte_eth_conf conf{};
    if (rte_eth_dev_configure(port, 1, 1, &conf) != 0 ||
        rte_eth_rx_queue_setup(port, 0, 1024, rte_socket_id(), nullptr, pool) != 0 ||
        rte_eth_tx_queue_setup(port, 0, 1024, rte_socket_id(), nullptr) != 0 ||
        rte_eth_dev_start(port) != 0) {
      std::fprintf(stderr, "tpgen: cannot start port %u\n", port);
      return 1;
    }
    rte_eth_promiscuous_enable(port);
  }
  Generator g(o, pool, ends);
  std::string out = "{\"mode\": \"" + o.mode + "\", \"family\": " + std::to_string(o.family) +
                    ", \"flows\": " + std::to_string(o.flows) + ", \"size\": \"" + o.size +
                    "\", \"tsc_hz\": " + std::to_string(g.hz());
  if (o.mode == "warmup") {
    g.sweep_flows(o.rate);
    rte_delay_ms(2500);  // UDP conntrack assures a flow that still talks after 2 s
    timespec ts{};
    clock_gettime(CLOCK_REALTIME,
                  &ts);  // when the assuring packets start: setup time runs from here
    char buf[64];
    std::snprintf(buf, sizeof buf, ", \"assure_sweep_unix\": %.3f",
                  double(ts.tv_sec) + ts.tv_nsec / 1e9);
    out += buf;
    // Two more rounds: a flow whose assuring packet or reply the slow path dropped gets another
    // chance.
    for (int round = 0; round < 2; ++round) {
      rte_delay_ms(300);
      g.sweep_flows(o.rate);
    }
  } else if (o.mode == "fixed") {
    out += ", \"trial\": " + trial_json(g.run(o.rate, o.duration), o.rate);
  } else if (o.mode == "search") {
    double hi = o.max_rate;
    if (hi <= 0) {  // what the generator itself can offer
      const Generator::Trial t = g.run(0, std::min(o.duration, 0.5));
      hi = double(t.tx) / t.seconds;
    }
    std::vector<double> ndr, pdr;
    int steps = 0;
    for (int k = 0; k < o.trials; ++k) {
      // The NDR cannot exceed the PDR: it is searched below it.
      pdr.push_back(search(g, o, hi, o.pdr_loss, steps));
      ndr.push_back(pdr.back() > 0 ? search(g, o, pdr.back(), 0.0, steps) : 0);
    }
    const double p = median(pdr);
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  ", \"offered_max\": %.0f, \"ndr\": %.0f, \"pdr\": %.0f, \"search_trials\": %d",
                  hi, median(ndr), p, steps);
    out += buf;
    out += ", \"at50\": " + trial_json(g.run(p * 0.5, o.duration), p * 0.5);
    out += ", \"at90\": " + trial_json(g.run(p * 0.9, o.duration), p * 0.9);
  } else {
    usage();
  }
  out += "}";
  std::printf("%s\n", out.c_str());
  for (uint16_t port = 0; port < 2; ++port) rte_eth_dev_stop(port);
  rte_eal_cleanup();
  return 0;
}
