// Control-plane throughput. Three figures the targets name:
//  - BM_FlowInstall: conntrack event messages (built and parsed with libnetfilter_conntrack, as
//    they come off the socket) through the offload policy into the flow tables: flows/s, and the
//    per-event latency percentiles (event read -> both directions in the fast path).
//  - BM_FlowInstallPaced: the same at a fixed 10k events/s, reporting p50/p99 latency.
//  - BM_KeepaliveRound: one NAT keepalive round for N real kernel conntrack entries (needs root:
//    it creates them in a private network namespace), in seconds of control-thread time.
//  - BM_RouteChange: N flows decided with the kernel's own route lookups (RtnlMirror on real
//    interfaces in a private network namespace, root), then every flow decided again as after a
//    route or rule change: the time until the fast path agrees with the kernel again; with the
//    lookups batched (the daemon's way) and one round trip per lookup, side by side.
//  - BM_SessionReset: a policy update's removal of a session's N offloaded flows from the DPDK
//    engine (FlowManager::take_where: the flows picked, their last counters read and attributed
//    to the per-client statistics, both directions removed), the control thread's part of the
//    10,000-flow update (docs/sessions.md), on its own, without the kernel's flush beside it.
#include <benchmark/benchmark.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <thread>
#include <vector>

#include "conntrack_codec.hpp"
#include "conntrack_writer.hpp"
#include "dpdk_env.hpp"
#include "engine_harness.hpp"
#include "fake_kernel.hpp"
#include "flow_manager.hpp"
#include "rtnl_mirror.hpp"
#include "traffic_stats.hpp"

namespace tp::test {
namespace {

using Clock = std::chrono::steady_clock;

// A masqueraded TCP entry from the Wi-Fi client, flow i, as a ctnetlink message.
std::vector<char> event_message(uint32_t i) {
  std::vector<char> buf(1024);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW;
  auto* nfh = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfh->nfgen_family = AF_INET;
  nfh->version = NFNETLINK_V0;
  nf_conntrack* ct = nfct_new();
  nfct_set_attr_u8(ct, ATTR_L3PROTO, AF_INET);
  nfct_set_attr_u8(ct, ATTR_L4PROTO, IPPROTO_TCP);
  nfct_set_attr_u32(ct, ATTR_ORIG_IPV4_SRC, ip("192.168.50.10").v4_be());
  nfct_set_attr_u32(ct, ATTR_ORIG_IPV4_DST,
                    htonl(0xcb000000u + i));  // 203.x.y.z: one server per flow
  nfct_set_attr_u16(ct, ATTR_ORIG_PORT_SRC, htons(static_cast<uint16_t>(1024 + i % 60000)));
  nfct_set_attr_u16(ct, ATTR_ORIG_PORT_DST, htons(443));
  nfct_set_attr_u8(ct, ATTR_REPL_L3PROTO, AF_INET);  // without them the reply tuple is not built
  nfct_set_attr_u8(ct, ATTR_REPL_L4PROTO, IPPROTO_TCP);
  nfct_set_attr_u32(ct, ATTR_REPL_IPV4_SRC, htonl(0xcb000000u + i));
  nfct_set_attr_u32(ct, ATTR_REPL_IPV4_DST, ip("100.64.0.2").v4_be());
  nfct_set_attr_u16(ct, ATTR_REPL_PORT_SRC, htons(443));
  nfct_set_attr_u16(ct, ATTR_REPL_PORT_DST, htons(static_cast<uint16_t>(1024 + i % 60000)));
  nfct_set_attr_u32(ct, ATTR_STATUS, IPS_CONFIRMED | IPS_SEEN_REPLY | IPS_ASSURED | IPS_SRC_NAT);
  nfct_set_attr_u8(ct, ATTR_TCP_STATE, 3);
  nfct_set_attr_u32(ct, ATTR_TIMEOUT, 600);
  if (nfct_nlmsg_build(nlh, ct) < 0) std::abort();
  nfct_destroy(ct);
  buf.resize(nlh->nlmsg_len);
  return buf;
}

struct Fixture {
  explicit Fixture(uint32_t flows) : h(static_cast<uint32_t>(flows * 2.2) + 64) {
    sync = std::make_unique<TopologySync>(*h.fast_path);
    fm = std::make_unique<FlowManager>(*h.fast_path, *sync, kernel, config(), nullptr);
    for (uint32_t i = 0; i < flows; ++i) events.push_back(event_message(i));
  }
  FakeKernel kernel;
  EngineHarness h;
  std::unique_ptr<TopologySync> sync;
  std::unique_ptr<FlowManager> fm;
  std::vector<std::vector<char>> events;
};

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

void BM_FlowInstall(benchmark::State& state) {
  init_eal(2048);
  const auto n = static_cast<uint32_t>(state.range(0));
  Fixture fx(n);
  std::vector<double> latency_us;
  latency_us.reserve(n);
  for (auto _ : state) {
    for (const auto& msg : fx.events) {
      const auto t0 = Clock::now();
      CtEntry e;
      parse_conntrack(reinterpret_cast<const nlmsghdr*>(msg.data()), e);
      fx.fm->upsert(e);
      latency_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
  }
  if (fx.fm->size() != n) {
    std::string why = "not every flow was installed:";
    for (const auto& [reason, count] : fx.fm->stats().refused)
      why += " " + reason + "=" + std::to_string(count);
    why += " failed=" + std::to_string(fx.fm->stats().install_failed) +
           " incomplete=" + std::to_string(fx.fm->stats().incomplete);
    state.SkipWithError(why.c_str());
  }
  state.SetItemsProcessed(static_cast<int64_t>(n));
  state.counters["p50_us"] = percentile(latency_us, 0.50);
  state.counters["p99_us"] = percentile(latency_us, 0.99);
}
BENCHMARK(BM_FlowInstall)->Arg(10000)->Arg(100000)->Unit(benchmark::kMillisecond)->Iterations(1);

void BM_FlowInstallPaced(benchmark::State& state) {
  init_eal(2048);
  const uint32_t n = 20000;  // two seconds at 10k events/s
  const auto gap = std::chrono::microseconds(100);
  Fixture fx(n);
  std::vector<double> latency_us;
  for (auto _ : state) {
    auto next = Clock::now();
    for (const auto& msg : fx.events) {
      while (Clock::now() < next) {
      }
      next += gap;
      const auto t0 = Clock::now();
      CtEntry e;
      parse_conntrack(reinterpret_cast<const nlmsghdr*>(msg.data()), e);
      fx.fm->upsert(e);
      latency_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
  }
  state.counters["p50_us"] = percentile(latency_us, 0.50);
  state.counters["p99_us"] = percentile(latency_us, 0.99);
  state.counters["max_us"] = latency_us.empty() ? 0 : latency_us.back();
}
BENCHMARK(BM_FlowInstallPaced)->Unit(benchmark::kMillisecond)->Iterations(1);

// Creates N conntrack entries in this (private) network namespace through ctnetlink.
bool create_entries(uint32_t n, std::vector<CtEntry>& out) {
  mnl_socket* nl = mnl_socket_open(NETLINK_NETFILTER);
  if (!nl || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) return false;
  std::vector<char> buf(64 * 1024);
  uint32_t i = 0;
  while (i < n) {
    mnl_nlmsg_batch* b = mnl_nlmsg_batch_start(buf.data(), 32 * 1024);
    uint32_t in_batch = 0;
    for (; i < n; ++i, ++in_batch) {
      const std::vector<char> msg = event_message(i);
      auto* nlh = static_cast<nlmsghdr*>(mnl_nlmsg_batch_current(b));
      std::memcpy(nlh, msg.data(), msg.size());
      nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE;
      if (!mnl_nlmsg_batch_next(b)) break;
      CtEntry e;
      parse_conntrack(reinterpret_cast<const nlmsghdr*>(msg.data()), e);
      out.push_back(e);
    }
    mnl_socket_sendto(nl, mnl_nlmsg_batch_head(b), mnl_nlmsg_batch_size(b));
    mnl_nlmsg_batch_stop(b);
  }
  mnl_socket_close(nl);
  return true;
}

void BM_KeepaliveRound(benchmark::State& state) {
  if (geteuid() != 0 || unshare(CLONE_NEWNET) != 0) {
    state.SkipWithError("needs root (creates conntrack entries in a private network namespace)");
    return;
  }
  const auto n = static_cast<uint32_t>(state.range(0));
  std::vector<CtEntry> entries;
  entries.reserve(n);
  if (!create_entries(n, entries)) {
    state.SkipWithError("cannot create conntrack entries");
    return;
  }
  ConntrackWriter writer;
  std::vector<ConntrackWriter::Update> updates;
  for (const CtEntry& e : entries) updates.push_back({e, 600, false});
  uint64_t failed = 0;
  int first_error = 0;
  for (auto _ : state) {
    const std::vector<int> rc = writer.apply(updates);
    failed =
        static_cast<uint64_t>(std::count_if(rc.begin(), rc.end(), [](int r) { return r != 0; }));
    for (int r : rc)
      if (r != 0 && !first_error) first_error = r;
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * updates.size()));
  state.counters["entries"] = static_cast<double>(updates.size());
  state.counters["failed"] = static_cast<double>(failed);
  if (failed)
    state.SkipWithError(("updates failed, first error " + std::to_string(first_error)).c_str());
  state.counters["datagrams"] =
      static_cast<double>(writer.datagrams) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_KeepaliveRound)->Arg(100000)->Unit(benchmark::kMillisecond)->Iterations(3);

// The lab box's three ports as veths, with the FakeKernel's addresses and resolved neighbours.
bool lab_interfaces() {
  return std::system(
             "sysctl -qw net.ipv4.ip_forward=1 && "
             "for l in modem0 wifi0 usb0; do ip link add $l type veth peer name $l-peer && "
             "ip link set $l up && ip link set $l-peer up; done && "
             "ip addr add 100.64.0.2/24 dev modem0 && ip addr add 192.168.50.1/24 dev wifi0 && "
             "ip addr add 192.168.60.1/24 dev usb0 && ip route add default via 100.64.0.1 && "
             "ip neigh replace 100.64.0.1 lladdr 02:00:00:00:00:fe dev modem0 nud permanent && "
             "ip neigh replace 192.168.50.10 lladdr 02:00:00:00:01:0a dev wifi0 nud permanent") ==
         0;
}

// The mirror, asking the kernel one question per round trip: what batching is measured against.
class OneByOne : public KernelView {
 public:
  explicit OneByOne(const KernelView& k) : k_(k) {}
  std::optional<RouteResult> route(const IpAddr& dst) const override { return k_.route(dst); }
  Forwarding forward(const RouteQuery& q) const override { return k_.forward(q); }
  bool has_address(int i, const IpAddr& a) const override { return k_.has_address(i, a); }
  std::optional<MacAddr> neighbour(int i, const IpAddr& a) const override {
    return k_.neighbour(i, a);
  }
  bool is_local(const IpAddr& a) const override { return k_.is_local(a); }
  std::vector<IpAddr> local_addresses() const override { return k_.local_addresses(); }
  std::vector<std::pair<IpAddr, MacAddr>> neighbours_of(int i) const override {
    return k_.neighbours_of(i);
  }

 private:
  const KernelView& k_;
};

void BM_RouteChange(benchmark::State& state) {
  if (geteuid() != 0 || unshare(CLONE_NEWNET) != 0 || !lab_interfaces()) {
    state.SkipWithError("needs root (real interfaces in a private network namespace)");
    return;
  }
  init_eal(2048);
  const auto n = static_cast<uint32_t>(state.range(0));
  RtnlMirror mirror;
  PolicyConfig cfg = config();
  std::map<int, PortRole> ports;
  const char* names[] = {"modem0", "wifi0", "usb0"};
  for (int p = 0; p < 3; ++p) {
    const auto old = std::find_if(cfg.ports.begin(), cfg.ports.end(),
                                  [&](const auto& kv) { return kv.second.port == p; });
    ports[mirror.ifindex(names[p])] = old->second;
  }
  cfg.ports = ports;
  EngineHarness h(static_cast<uint32_t>(n * 2.2) + 64);
  TopologySync sync(*h.fast_path);
  const OneByOne one_by_one(mirror);
  const bool batched = state.range(1) != 0;
  FlowManager fm(*h.fast_path, sync, batched ? static_cast<const KernelView&>(mirror) : one_by_one,
                 cfg, nullptr);
  const auto t0 = Clock::now();
  for (uint32_t i = 0; i < n; ++i) {
    CtEntry e;
    const auto msg = event_message(i);
    parse_conntrack(reinterpret_cast<const nlmsghdr*>(msg.data()), e);
    fm.upsert(e);
  }
  const double install_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  if (fm.size() != n) {
    std::string why = "not every flow was installed:";
    for (const auto& [reason, count] : fm.stats().refused)
      why += " " + reason + "=" + std::to_string(count);
    state.SkipWithError(why.c_str());
    return;
  }
  const uint64_t lookups0 = mirror.route_lookups();
  const uint64_t unchanged0 = fm.stats().unchanged;
  for (auto _ : state) fm.reevaluate_all();
  state.counters["flows"] = n;
  state.counters["install_ms"] = install_ms;
  state.counters["lookups_per_round"] = static_cast<double>(mirror.route_lookups() - lookups0) /
                                        static_cast<double>(state.iterations());
  state.counters["still_offloaded"] = static_cast<double>(fm.size());
  // Flows whose decision did not change are left as they are in the dataplane (no removal, no
  // reinstall): forwarding them never stalls while the others are decided again.
  state.counters["left_in_place_per_round"] =
      static_cast<double>(fm.stats().unchanged - unchanged0) /
      static_cast<double>(state.iterations());
}
BENCHMARK(BM_RouteChange)
    ->ArgNames({"flows", "batched"})
    ->Args({10000, 0})
    ->Args({10000, 1})
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3);

void BM_SessionReset(benchmark::State& state) {
  init_eal(2048);
  const auto n = static_cast<uint32_t>(state.range(0));
  double total_ms = 0;
  std::unique_ptr<Fixture> fx;
  std::unique_ptr<TrafficStats> traffic;
  for (auto _ : state) {
    state.PauseTiming();  // a fresh table of n flows; the previous one torn down, untimed
    traffic.reset();
    fx = std::make_unique<Fixture>(n);
    for (const auto& msg : fx->events) {
      CtEntry e;
      parse_conntrack(reinterpret_cast<const nlmsghdr*>(msg.data()), e);
      fx->fm->upsert(e);
    }
    traffic = std::make_unique<TrafficStats>();
    traffic->set_scene({{{"modem0", false}, {"wifi0", true}, {"usb0", true}}, 0, {}, {}});
    fx->fm->on_removed = [t = traffic.get()](const FlowView& v) { t->flow_removed(v); };
    state.ResumeTiming();
    const auto t0 = Clock::now();
    const auto taken = fx->fm->take_where([](const CtEntry&, int) { return true; });
    total_ms += std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (taken.size() != n) state.SkipWithError("not every flow was taken");
  }
  state.counters["flows"] = n;
  state.counters["us_per_flow"] =
      total_ms * 1000 / (static_cast<double>(n) * static_cast<double>(state.iterations()));
}
BENCHMARK(BM_SessionReset)->Arg(10000)->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace
}  // namespace tp::test

BENCHMARK_MAIN();
