// xdpgen: the perf lab's sender of XDP frames (harness.py --one-cpu and --sender xdpgen). It sends
// the same UDP flows as tpgen, paced or as fast as one core can, as XDP frames: BPF_PROG_TEST_RUN
// in live-frames mode runs xdpgen.bpf.c on each frame, which redirects it out of the generator's
// veth into the box's. The box's veth then receives what a NIC driver hands its XDP hook (a raw
// buffer; the kernel's path builds its skb around it), where tpgen's AF_XDP copy-mode transmit
// hands it skbs (which its XDP hook must copy into a page of its own first). It only sends; the
// harness counts at the veths. Prints one JSON object on stdout: frames handed to the kernel,
// seconds, the TSC rate.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>
#include <x86intrin.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "udp_frame.hpp"

extern const unsigned char tp_perf_xdpgen_obj[];
extern const std::size_t tp_perf_xdpgen_obj_size;

namespace {

constexpr int kHeaderBytes = 64;
constexpr uint32_t kFirstUnit = 16384;  // frames per call and unit of weight, at first
constexpr uint32_t kMaxUnit = 1u << 24;
constexpr double kRoundSeconds = 0.5;

struct Config {  // struct xdpgen_config in xdpgen.bpf.c
  uint32_t ifindex;
  uint32_t flows;
  uint16_t sport_base;
  uint16_t udp_csum;
  uint32_t ipv6;
  uint64_t interval_ns;
  uint8_t header[kHeaderBytes];
};

struct State {  // struct xdpgen_state
  uint32_t next_flow, pad;
  uint64_t next_ns, sent, first_ns, last_ns;
};

struct Options : tp::perf::FrameOptions {
  std::string device;
  double duration = 1.0;
  double rate = 0;  // frames per second; 0: as fast as the CPU goes
};

double now_s() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

[[noreturn]] void fail(const char* what, int err) {
  std::fprintf(stderr, "xdpgen: %s: %s\n", what, std::strerror(err));
  std::exit(1);
}

[[noreturn]] void usage() {
  std::fprintf(
      stderr,
      "usage: xdpgen --device IF --family 4|6 --flows N --size 64|imix|1500 "
      "--client-mac M --box-mac M --client-ip A --server-ip A --duration S [--rate PPS]\n");
  std::exit(2);
}

// Paced: how long the last call was sending (its first to its last frame); the next call's
// first frame starts the count again.
uint64_t sending_time(int state) {
  const uint32_t key = 0;
  State st{};
  if (bpf_map_lookup_elem(state, &key, &st) != 0) fail("read the pacer", errno);
  const uint64_t ns = st.first_ns ? st.last_ns - st.first_ns : 0;
  st.first_ns = 0;
  if (bpf_map_update_elem(state, &key, &st, BPF_ANY) != 0) fail("reset the pacer", errno);
  return ns;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; i += 2) {
    const std::string a = argv[i];
    if (i + 1 >= argc) usage();
    const std::string v = argv[i + 1];
    if (o.take(a, v))
      continue;
    else if (a == "--device")
      o.device = v;
    else if (a == "--duration")
      o.duration = std::atof(v.c_str());
    else if (a == "--rate")
      o.rate = std::atof(v.c_str());
    else
      usage();
  }
  if (o.device.empty() || o.duration <= 0 || o.rate < 0) usage();
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  tp::perf::FrameEnds ends;
  if (const std::string bad = o.ends(ends); !bad.empty()) {
    std::fprintf(stderr, "xdpgen: %s\n", bad.c_str());
    return 2;
  }
  const unsigned ifindex = if_nametoindex(o.device.c_str());
  if (ifindex == 0) fail(o.device.c_str(), errno);

  bpf_object* obj = bpf_object__open_mem(tp_perf_xdpgen_obj, tp_perf_xdpgen_obj_size, nullptr);
  if (!obj) fail("open the program", errno);
  if (int err = bpf_object__load(obj)) fail("load the program", -err);
  const int prog = bpf_program__fd(bpf_object__find_program_by_name(obj, "xdpgen"));
  const int config = bpf_object__find_map_fd_by_name(obj, "config");
  const int state = bpf_object__find_map_fd_by_name(obj, "state");
  if (prog < 0 || config < 0 || state < 0) fail("find the program and its maps", ENOENT);

  // One template per frame size (flow 0's; the program moves each frame to its flow), weighted by
  // how often the size comes in the mix.
  struct Template {
    std::vector<uint8_t> frame;
    Config config;
    uint32_t weight;
  };
  std::vector<Template> templates;
  for (uint16_t len : tp::perf::frame_sizes(o.size, o.family)) {
    if (!templates.empty() && templates.back().frame.size() == len) {
      ++templates.back().weight;
      continue;
    }
    Template t{std::vector<uint8_t>(len), {}, 1};
    tp::perf::fill_udp_frame(t.frame.data(), len, ends, tp::perf::kClientPortBase, 0);
    t.config.ifindex = ifindex;
    t.config.flows = o.flows;
    t.config.sport_base = tp::perf::kClientPortBase;
    const std::size_t udp = 14 + (o.family == 6 ? 40 : 20);
    std::memcpy(&t.config.udp_csum, t.frame.data() + udp + 6, 2);
    t.config.ipv6 = o.family == 6;
    t.config.interval_ns = o.rate > 0 ? static_cast<uint64_t>(1e9 / o.rate) : 0;
    std::memcpy(t.config.header, t.frame.data(), std::min<std::size_t>(kHeaderBytes, len));
    templates.push_back(std::move(t));
  }

  // Each BPF_PROG_TEST_RUN call has a fixed cost of tens of milliseconds (its page pool is set up
  // and torn down, mostly waiting): the calls grow until a round takes kRoundSeconds.
  uint64_t runs = 0, sending_ns = 0;
  uint32_t unit = kFirstUnit;
  const double t0 = now_s();
  const uint64_t tsc0 = __rdtsc();
  double t1 = t0;
  while (t1 - t0 < o.duration) {
    for (const Template& t : templates) {
      const uint32_t key = 0;
      if (bpf_map_update_elem(config, &key, &t.config, BPF_ANY) != 0)
        fail("set the template", errno);
      const uint32_t frames = unit * t.weight;
      bpf_test_run_opts run{};
      run.sz = sizeof(run);
      run.data_in = t.frame.data();
      run.data_size_in = static_cast<uint32_t>(t.frame.size());
      run.repeat = static_cast<int>(frames);
      run.flags = BPF_F_TEST_XDP_LIVE_FRAMES;
      if (bpf_prog_test_run_opts(prog, &run) != 0) fail("BPF_PROG_TEST_RUN (live frames)", errno);
      runs += frames;
      if (o.rate > 0) sending_ns += sending_time(state);
    }
    const double t2 = now_s();
    if (t2 - t1 < kRoundSeconds && unit < kMaxUnit) unit *= 2;
    t1 = t2;
  }
  const double seconds = t1 - t0;
  State st{};
  const uint32_t key = 0;
  if (bpf_map_lookup_elem(state, &key, &st) != 0) fail("read what was sent", errno);
  // sent: frames redirected toward the box (paced: those that were due; the others went back
  // to the pool unsent); sending_seconds: paced, the time the calls were sending, without the
  // gaps between calls.
  std::printf(
      "{\"sent\": %lu, \"runs\": %lu, \"seconds\": %.4f, \"sending_seconds\": %.4f, "
      "\"tsc_hz\": %.0f}\n",
      st.sent, runs, seconds, o.rate > 0 ? double(sending_ns) / 1e9 : seconds,
      double(__rdtsc() - tsc0) / seconds);
  bpf_object__close(obj);
  return 0;
}
