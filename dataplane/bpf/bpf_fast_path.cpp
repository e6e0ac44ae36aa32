#include "bpf_fast_path.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <linux/membarrier.h>
#include <linux/pfkeyv2.h>
#include <net/if.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <xdp/libxdp.h>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <vector>

#include "maps.h"
#include "xdp_features.hpp"

extern const unsigned char tp_bpf_tc_obj[];
extern const std::size_t tp_bpf_tc_obj_size;
extern const unsigned char tp_bpf_xdp_obj[];
extern const std::size_t tp_bpf_xdp_obj_size;

namespace tp {

static_assert(sizeof(tp_key4) == sizeof(FlowKey4) && sizeof(tp_key6) == sizeof(FlowKey6) &&
              sizeof(tp_rule_key6) == sizeof(RuleKey6));
static_assert(offsetof(tp_key4, proto) == offsetof(FlowKey4, proto) &&
              offsetof(tp_key4, vlan) == offsetof(FlowKey4, vlan));
static_assert(offsetof(tp_key6, proto) == offsetof(FlowKey6, proto) &&
              offsetof(tp_key6, vlan) == offsetof(FlowKey6, vlan));
static_assert(offsetof(tp_rule_key6, kind) == offsetof(RuleKey6, kind) &&
              offsetof(tp_rule_key6, zero) == offsetof(RuleKey6, zero));
static_assert(TP_MAX_PORTS == kMaxPorts && TP_MAX_NEXTHOPS == kMaxNextHops &&
              TP_MAX_LOCAL_ADDRS == kMaxLocalAddrs && TP_MAX_KERNEL_ONLY6 == kMaxKernelOnly6 &&
              TP_ANY_PORT == kAnyPort);
static_assert(TP_R_COUNT == kReasonCount && TP_R_data_limit == int(Reason::data_limit));
static_assert(sizeof(tp_prefix6) == sizeof(Prefix6) && TP_BANKS == 2);
static_assert(TP_RULE_CLIENT == int(Rule6::client) && TP_RULE_TO_PREFIX == int(Rule6::to_prefix));
static_assert(TP_RW_SNAT == int(Rewrite::snat) && TP_RW_DNAT == int(Rewrite::dnat));

namespace {

// libbpf reports through a print callback: collected while loading, so that an error can say
// what the verifier refused. Control thread only.
std::string* g_log = nullptr;

int collect_log(libbpf_print_level level, const char* fmt, va_list args) {
  if (!g_log || level == LIBBPF_DEBUG) return 0;
  char line[1024];
  vsnprintf(line, sizeof(line), fmt, args);
  *g_log += line;
  return 0;
}

class LogScope {
 public:
  explicit LogScope(std::string& log) : old_(libbpf_set_print(collect_log)) { g_log = &log; }
  ~LogScope() {
    g_log = nullptr;
    libbpf_set_print(old_);
  }
  LogScope(const LogScope&) = delete;
  LogScope& operator=(const LogScope&) = delete;

 private:
  libbpf_print_fn_t old_;
};

// The last lines of a verifier or libbpf log: the refusal is at its end.
std::string tail(const std::string& log, size_t lines = 12) {
  size_t pos = log.size();
  for (size_t n = 0; n <= lines && pos > 0; ++n) {
    pos = log.rfind('\n', pos - 1);
    if (pos == std::string::npos) return log;
  }
  return log.substr(pos + 1);
}

std::string errstr(int err) { return std::strerror(err < 0 ? -err : err); }

// Everything the programs need from the kernel, by name, so that a refusal on an older or
// trimmed kernel says which part is missing instead of a verifier dump.
std::string missing_features() {
  std::string missing;
  auto need = [&missing](int supported, const char* what) {
    if (supported == 0) missing += std::string(missing.empty() ? "" : ", ") + what;
  };
  need(libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_SCHED_CLS, nullptr), "tc BPF programs");
  need(libbpf_probe_bpf_map_type(BPF_MAP_TYPE_HASH, nullptr), "hash maps");
  need(libbpf_probe_bpf_map_type(BPF_MAP_TYPE_PERCPU_ARRAY, nullptr), "per-CPU arrays");
  struct Helper {
    bpf_func_id id;
    const char* name;
  };
  for (const Helper& h : {Helper{BPF_FUNC_skb_pull_data, "bpf_skb_pull_data"},
                          Helper{BPF_FUNC_l3_csum_replace, "bpf_l3_csum_replace"},
                          Helper{BPF_FUNC_l4_csum_replace, "bpf_l4_csum_replace"},
                          Helper{BPF_FUNC_skb_change_head, "bpf_skb_change_head"},
                          Helper{BPF_FUNC_skb_vlan_push, "bpf_skb_vlan_push"},
                          Helper{BPF_FUNC_skb_vlan_pop, "bpf_skb_vlan_pop"},
                          Helper{BPF_FUNC_redirect, "bpf_redirect"},
                          Helper{BPF_FUNC_ktime_get_ns, "bpf_ktime_get_ns"}})
    need(libbpf_probe_bpf_helper(BPF_PROG_TYPE_SCHED_CLS, h.id, nullptr), h.name);
  return missing;
}

std::string missing_xdp_features() {
  std::string missing;
  auto need = [&missing](int supported, const char* what) {
    if (supported == 0) missing += std::string(missing.empty() ? "" : ", ") + what;
  };
  need(libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_XDP, nullptr), "XDP programs");
  need(libbpf_probe_bpf_map_type(BPF_MAP_TYPE_DEVMAP, nullptr), "device maps");
  need(libbpf_probe_bpf_helper(BPF_PROG_TYPE_XDP, BPF_FUNC_redirect_map, nullptr),
       "bpf_redirect_map");
  need(libbpf_probe_bpf_helper(BPF_PROG_TYPE_XDP, BPF_FUNC_xdp_adjust_head, nullptr),
       "bpf_xdp_adjust_head");
  need(libbpf_probe_bpf_helper(BPF_PROG_TYPE_XDP, BPF_FUNC_xdp_get_buff_len, nullptr),
       "bpf_xdp_get_buff_len (Linux 5.18)");
  return missing;
}

int map_fd(bpf_object* obj, const char* name) {
  bpf_map* m = bpf_object__find_map_by_name(obj, name);
  return m ? bpf_map__fd(m) : -1;
}

// A full hash map refuses with E2BIG (preallocated) or ENOMEM; the boundary says -ENOSPC.
int install_error(int err) {
  err = err < 0 ? -err : err;
  if (err == E2BIG || err == ENOMEM) return -ENOSPC;
  return -err;
}

tp_action action_of(const FlowPlan4& p) {
  tp_action a{};
  a.nat_addr = p.nat_addr;
  a.nat_port = p.nat_port;
  a.nexthop = p.nexthop;
  a.csum_l3 = p.csum.l3;
  a.csum_l4_addr = p.csum.l4_addr;
  a.csum_l4_port = p.csum.l4_port;
  a.rewrite = static_cast<uint8_t>(p.rewrite);
  return a;
}

tp_action route_action(uint16_t nexthop) {
  tp_action a{};
  a.nexthop = nexthop;
  return a;
}

tp_nexthop nexthop_value(const NextHop& nh) {
  tp_nexthop v{};
  std::memcpy(v.dst_mac, nh.dst_mac.addr_bytes, 6);
  std::memcpy(v.src_mac, nh.src_mac.addr_bytes, 6);
  v.port = nh.port;
  v.mtu = nh.mtu;
  v.vlan = nh.vlan;
  v.valid = nh.valid;
  return v;
}

// Returns once every BPF program that was running has finished: tc and XDP programs run inside
// RCU read-side sections, and both calls below end with synchronize_rcu() in the kernel.
// MEMBARRIER_CMD_GLOBAL refuses on nohz_full kernels; closing a PF_KEY socket is Android's way
// (BpfCoordinator's synchronizeKernelRCU).
bool wait_for_readers() {
  if (syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) == 0) return true;
  const int fd = socket(PF_KEY, SOCK_RAW | SOCK_CLOEXEC, PF_KEY_V2);
  if (fd < 0) return false;
  close(fd);
  return true;
}

}  // namespace

struct BpfFastPath::Bank {
  std::array<tp_port, kMaxPorts> ports{};
  std::vector<tp_nexthop> nexthops = std::vector<tp_nexthop>(kMaxNextHops);
  tp_kernel_only6 kernel_only6{};
};

BpfFastPath::BpfFastPath() : shadow_(std::make_unique<Topology>()) {
  for (auto& b : banks_) b = std::make_unique<Bank>();  // the maps start out zeroed, as these
}

BpfFastPath::~BpfFastPath() {
  for (uint8_t p = 0; p < kMaxPorts; ++p) {
    detach(p);
    detach_egress(p);
  }
  if (xdp_obj_) bpf_object__close(xdp_obj_);
  if (tc_obj_) bpf_object__close(tc_obj_);
}

std::unique_ptr<BpfFastPath> BpfFastPath::create(const BpfOptions& opts, std::string& error) {
  std::unique_ptr<BpfFastPath> fp(new BpfFastPath());
  if (!fp->load(opts, error)) return nullptr;
  fp->update_topology([](Topology&) {});  // the maps start out holding the empty topology
  return fp;
}

bool BpfFastPath::load(const BpfOptions& opts, std::string& error) {
  if (opts.flow_capacity == 0 || opts.rule_capacity == 0) {
    error = "flow and rule capacities must be at least 1";
    return false;
  }
  const int ncpus = libbpf_num_possible_cpus();
  if (ncpus <= 0) {
    error = "cannot count the possible CPUs: " + errstr(ncpus);
    return false;
  }
  ncpus_ = ncpus;
  if (!wait_for_readers()) {
    error =
        "the kernel offers no way to wait for running BPF programs (membarrier "
        "MEMBARRIER_CMD_GLOBAL, or PF_KEY sockets), which publishing the topology needs";
    return false;
  }
  std::string log;
  LogScope scope(log);
  tc_obj_ = bpf_object__open_mem(tp_bpf_tc_obj, tp_bpf_tc_obj_size, nullptr);
  if (!tc_obj_) {
    error = "cannot open the embedded tc program: " + errstr(errno) + "\n" + tail(log);
    return false;
  }
  for (const char* m : {"tp_flows4", "tp_flows6"})
    bpf_map__set_max_entries(bpf_object__find_map_by_name(tc_obj_, m), opts.flow_capacity);
  bpf_map__set_max_entries(bpf_object__find_map_by_name(tc_obj_, "tp_rules6"), opts.rule_capacity);
  if (int err = bpf_object__load(tc_obj_)) {
    const std::string missing = missing_features();
    error = "cannot load the tc programs (" + errstr(err) + ")";
    if (!missing.empty()) error += ": the kernel lacks " + missing;
    if (err == -EPERM) error += "; loading BPF programs needs CAP_BPF and CAP_NET_ADMIN (root)";
    error += "\n" + tail(log);
    return false;
  }
  maps_.flows4 = map_fd(tc_obj_, "tp_flows4");
  maps_.flows6 = map_fd(tc_obj_, "tp_flows6");
  maps_.rules6 = map_fd(tc_obj_, "tp_rules6");
  maps_.ports = map_fd(tc_obj_, "tp_ports");
  maps_.ifindex_port = map_fd(tc_obj_, "tp_ifindex_port");
  maps_.nexthops = map_fd(tc_obj_, "tp_nexthops");
  maps_.kernel_only6 = map_fd(tc_obj_, "tp_kernel_only6");
  maps_.config = map_fd(tc_obj_, "tp_config");
  maps_.port_totals = map_fd(tc_obj_, "tp_port_totals");
  maps_.reasons = map_fd(tc_obj_, "tp_reasons");
  maps_.limits = map_fd(tc_obj_, "tp_limits");
  maps_.tx_ports = map_fd(tc_obj_, "tp_tx_ports");

  // XDP is optional: tc alone is a complete engine.
  std::string xdp_log;
  xdp_obj_ = open_xdp_object(xdp_error_);
  if (xdp_obj_) {
    if (int err = bpf_object__load(xdp_obj_)) {
      const std::string missing = missing_xdp_features();
      xdp_error_ = "cannot load the XDP program (" + errstr(err) + ")";
      if (!missing.empty()) xdp_error_ += ": the kernel lacks " + missing;
      xdp_error_ += "\n" + tail(log);
      bpf_object__close(xdp_obj_);
      xdp_obj_ = nullptr;
    }
  }
  return true;
}

// An XDP object whose maps are the tc object's: one write is seen by every hook.
bpf_object* BpfFastPath::open_xdp_object(std::string& error) const {
  bpf_object* obj = bpf_object__open_mem(tp_bpf_xdp_obj, tp_bpf_xdp_obj_size, nullptr);
  if (!obj) {
    error = "cannot open the embedded XDP program: " + errstr(errno);
    return nullptr;
  }
  bpf_map* m;
  bpf_object__for_each_map(m, obj) {
    const int fd = map_fd(tc_obj_, bpf_map__name(m));
    if (fd < 0) continue;  // the object's own sections (.rodata, run config)
    if (int err = bpf_map__reuse_fd(m, fd)) {
      error = std::string("cannot share map ") + bpf_map__name(m) + ": " + errstr(err);
      bpf_object__close(obj);
      return nullptr;
    }
  }
  return obj;
}

int BpfFastPath::prog_fd(Hook hook) const {
  switch (hook) {
    case Hook::tc:
      return bpf_program__fd(bpf_object__find_program_by_name(tc_obj_, "tp_tc_ether"));
    case Hook::tc_rawip:
      return bpf_program__fd(bpf_object__find_program_by_name(tc_obj_, "tp_tc_rawip"));
    case Hook::xdp:
      return xdp_obj_ ? bpf_program__fd(bpf_object__find_program_by_name(xdp_obj_, "tp_xdp")) : -1;
  }
  return -1;
}

int BpfFastPath::set_port_device(uint8_t port, int ifindex, bool rawip) {
  if (port >= kMaxPorts || ifindex <= 0) return -EINVAL;
  Device& d = devices_[port];
  if (d.ifindex && d.ifindex != ifindex) {
    uint32_t old = static_cast<uint32_t>(d.ifindex);
    bpf_map_delete_elem(maps_.ifindex_port, &old);
  }
  uint32_t key = static_cast<uint32_t>(ifindex), value = port;
  if (bpf_map_update_elem(maps_.ifindex_port, &key, &value, BPF_ANY)) return -errno;
  d.ifindex = ifindex;
  d.rawip = rawip;
  // XDP frames are redirected only to devices that say they take them.
  std::string why;
  d.xdp_target = !rawip && xdp_redirect_target(ifindex, why) == XdpTarget::yes;
  uint32_t idx = port;
  if (d.xdp_target) {
    if (bpf_map_update_elem(maps_.tx_ports, &idx, &key, BPF_ANY)) d.xdp_target = false;
  } else {
    bpf_map_delete_elem(maps_.tx_ports, &idx);
  }
  return publish() ? 0 : -EIO;
}

bool BpfFastPath::publish() {
  const uint32_t next = bank_ ^ 1;
  Bank& b = *banks_[next];
  bool ok = true;
  // Only what differs from the bank's content is written: mostly a port or a next hop.
  for (uint8_t port = 0; port < kMaxPorts; ++port) {
    const PortInfo& p = shadow_->ports[port];
    tp_port v{};
    v.enabled = p.enabled;
    v.rawip = devices_[port].rawip;
    v.n_local4 = std::min<uint8_t>(p.n_local4, kMaxLocalAddrs);
    v.n_local6 = std::min<uint8_t>(p.n_local6, kMaxLocalAddrs);
    std::memcpy(v.mac, p.mac.addr_bytes, 6);
    v.mtu = p.mtu;
    v.mtu6 = p.mtu6;
    v.ifindex = static_cast<uint32_t>(devices_[port].ifindex);
    v.tc_egress = egress_ifindex_[port] != 0;
    for (size_t i = 0; i < kMaxLocalAddrs; ++i) {
      v.local4[i] = p.local4[i];
      std::memcpy(v.local6[i], p.local6[i].data(), 16);
    }
    if (std::memcmp(&v, &b.ports[port], sizeof(v)) == 0) continue;
    const uint32_t key = next * kMaxPorts + port;
    if (bpf_map_update_elem(maps_.ports, &key, &v, BPF_ANY) == 0)
      b.ports[port] = v;
    else
      ok = false;
  }
  for (uint32_t i = 0; i < kMaxNextHops; ++i) {
    const tp_nexthop v = nexthop_value(shadow_->nexthops[i]);
    if (std::memcmp(&v, &b.nexthops[i], sizeof(v)) == 0) continue;
    const uint32_t key = next * kMaxNextHops + i;
    if (bpf_map_update_elem(maps_.nexthops, &key, &v, BPF_ANY) == 0)
      b.nexthops[i] = v;
    else
      ok = false;
  }
  tp_kernel_only6 k6{};
  k6.n = std::min<uint32_t>(shadow_->n_kernel_only6, kMaxKernelOnly6);
  std::memcpy(k6.prefix, shadow_->kernel_only6.data(), k6.n * sizeof(tp_prefix6));
  if (std::memcmp(&k6, &b.kernel_only6, sizeof(k6)) != 0) {
    if (bpf_map_update_elem(maps_.kernel_only6, &next, &k6, BPF_ANY) == 0)
      b.kernel_only6 = k6;
    else
      ok = false;
  }
  if (!ok) return false;
  // The bank's entries before the flip, on every CPU (system call entry is no barrier); the
  // programs' loads after reading the bank depend on its value.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (!store_bank(next)) return false;
  bank_ = next;
  // The old bank is written by the next edit: no program may be reading it then.
  return wait_for_readers();
}

void BpfFastPath::update_topology(const std::function<void(Topology&)>& edit) {
  edit(*shadow_);
  publish();
}

namespace {

template <typename Key>
int install_pair(int fd, const Key& k1, const tp_action& a1, const Key& k2, const tp_action& a2) {
  if (bpf_map_update_elem(fd, &k1, &a1, BPF_NOEXIST)) return install_error(errno);
  if (bpf_map_update_elem(fd, &k2, &a2, BPF_NOEXIST)) {
    const int err = install_error(errno);
    bpf_map_delete_elem(fd, &k1);
    return err;
  }
  return 0;
}

bool valid_plan(const FlowPlan4& p) {
  return p.nexthop < kMaxNextHops && p.rewrite <= Rewrite::dnat;
}

}  // namespace

int BpfFastPath::install(const FlowPlan4& orig, const FlowPlan4& reply) {
  if (!valid_plan(orig) || !valid_plan(reply) || orig.match == reply.match) return -EINVAL;
  return install_pair(maps_.flows4, orig.match, action_of(orig), reply.match, action_of(reply));
}

int BpfFastPath::install(const FlowPlan6& orig, const FlowPlan6& reply) {
  if (orig.nexthop >= kMaxNextHops || reply.nexthop >= kMaxNextHops || orig.match == reply.match)
    return -EINVAL;
  return install_pair(maps_.flows6, orig.match, route_action(orig.nexthop), reply.match,
                      route_action(reply.nexthop));
}

void BpfFastPath::remove(const FlowKey4& orig, const FlowKey4& reply) {
  bpf_map_delete_elem(maps_.flows4, &orig);
  bpf_map_delete_elem(maps_.flows4, &reply);
}

void BpfFastPath::remove(const FlowKey6& orig, const FlowKey6& reply) {
  bpf_map_delete_elem(maps_.flows6, &orig);
  bpf_map_delete_elem(maps_.flows6, &reply);
}

FlowUsage usage_of_action(const tp_action& a) {
  FlowUsage u;
  u.packets = a.packets;
  u.bytes = a.ip_bytes;
  u.last_used_ms = static_cast<uint32_t>(a.last_used_ns / 1000000);
  return u;
}

std::optional<FlowUsage> BpfFastPath::usage_of(int fd, const void* key) const {
  tp_action a{};
  if (bpf_map_lookup_elem(fd, key, &a)) return std::nullopt;
  return usage_of_action(a);
}

std::optional<FlowUsage> BpfFastPath::usage(const FlowKey4& dir) const {
  return usage_of(maps_.flows4, &dir);
}
std::optional<FlowUsage> BpfFastPath::usage(const FlowKey6& dir) const {
  return usage_of(maps_.flows6, &dir);
}
std::optional<FlowUsage> BpfFastPath::usage(const RuleKey6& key) const {
  return usage_of(maps_.rules6, &key);
}

int BpfFastPath::add_rule(const RulePlan6& rule) {
  if (rule.nexthop >= kMaxNextHops) return -EINVAL;
  const tp_action a = route_action(rule.nexthop);
  if (bpf_map_update_elem(maps_.rules6, &rule.match, &a, BPF_NOEXIST)) return install_error(errno);
  return 0;
}

void BpfFastPath::remove_rule(const RuleKey6& key) { bpf_map_delete_elem(maps_.rules6, &key); }

uint32_t BpfFastPath::clock_ms() const {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint32_t>(static_cast<uint64_t>(ts.tv_sec) * 1000 +
                               static_cast<uint64_t>(ts.tv_nsec) / 1000000);
}

// Counting restarts at `used`. Disarmed first, so that no program adds to the old count under the
// new limit; adds racing with the update are lost, which is what restarting the count means.
void BpfFastPath::arm_limit(uint8_t port, uint64_t limit, uint64_t used) {
  if (port >= kMaxPorts) return;
  uint32_t key = port;
  tp_limit v{0, limit, used};
  bpf_map_update_elem(maps_.limits, &key, &v, BPF_ANY);
  v.armed = 1;
  bpf_map_update_elem(maps_.limits, &key, &v, BPF_ANY);
}

void BpfFastPath::disarm_limit(uint8_t port) {
  if (port >= kMaxPorts) return;
  uint32_t key = port;
  tp_limit v{};
  if (bpf_map_lookup_elem(maps_.limits, &key, &v)) return;
  v.armed = 0;
  bpf_map_update_elem(maps_.limits, &key, &v, BPF_ANY);
}

uint64_t BpfFastPath::limit_used(uint8_t port) const {
  uint32_t key = port;
  tp_limit v{};
  if (port >= kMaxPorts || bpf_map_lookup_elem(maps_.limits, &key, &v)) return 0;
  return v.used;
}

bool BpfFastPath::limit_reached(uint8_t port) const {
  uint32_t key = port;
  tp_limit v{};
  if (port >= kMaxPorts || bpf_map_lookup_elem(maps_.limits, &key, &v)) return false;
  return v.armed && v.used >= v.limit;
}

PortCounts BpfFastPath::port_counts(uint8_t port) const {
  PortCounts t;
  if (port >= kMaxPorts) return t;
  std::vector<tp_port_totals> per_cpu(static_cast<size_t>(ncpus_));
  uint32_t key = port;
  if (bpf_map_lookup_elem(maps_.port_totals, &key, per_cpu.data())) return t;
  for (const tp_port_totals& c : per_cpu) {
    t.rx_packets += c.rx_packets;
    t.rx_ip_bytes += c.rx_ip_bytes;
    t.fwd_rx_packets += c.fwd_rx_packets;
    t.fwd_rx_bytes += c.fwd_rx_bytes;
    t.fwd_tx_packets += c.fwd_tx_packets;
    t.fwd_tx_bytes += c.fwd_tx_bytes;
    t.punted += c.punted;
    t.dropped += c.dropped;
  }
  return t;
}

ReasonTotals BpfFastPath::reasons() const {
  ReasonTotals totals{};
  std::vector<uint64_t> per_cpu(static_cast<size_t>(ncpus_));
  for (uint32_t r = 0; r < kReasonCount; ++r) {
    if (bpf_map_lookup_elem(maps_.reasons, &r, per_cpu.data())) continue;
    for (uint64_t v : per_cpu) totals[r] += v;
  }
  return totals;
}

bool BpfFastPath::attach(uint8_t port, Hook hook, std::string& error) {
  if (port >= kMaxPorts || !devices_[port].ifindex) {
    error = "port " + std::to_string(port) + " has no device (set_port_device first)";
    return false;
  }
  detach(port);
  const Device& d = devices_[port];
  Attachment& at = attached_[port];
  at.note.clear();
  if (hook == Hook::xdp) {
    std::string why;
    if (d.rawip) {
      at.note = "XDP needs an Ethernet device; tc used";
    } else if (!xdp_obj_) {
      at.note = "XDP unavailable (" + xdp_error_ + "); tc used";
    } else if (xdp_redirect_target(d.ifindex, why) != XdpTarget::yes) {
      at.note = "XDP not used: " + why + "; tc used";
    } else if (attach_xdp(port, why)) {
      at.note = "XDP (native)";
      return true;
    } else {
      at.note = "XDP attach failed (" + why + "); tc used";
    }
  }
  return attach_tc(port, d.rawip || hook == Hook::tc_rawip, error);
}

bool BpfFastPath::attach_tc(uint8_t port, bool rawip, std::string& error) {
  Attachment& at = attached_[port];
  const int ifindex = devices_[port].ifindex;
  bpf_tc_hook h{};
  h.sz = sizeof(h);
  h.ifindex = ifindex;
  h.attach_point = BPF_TC_INGRESS;
  int err = bpf_tc_hook_create(&h);
  if (err && err != -EEXIST) {
    error = "cannot create clsact on ifindex " + std::to_string(ifindex) + ": " + errstr(err);
    return false;
  }
  bpf_tc_opts o{};
  o.sz = sizeof(o);
  o.handle = kTcHandle;
  o.priority = kTcPriority;
  o.prog_fd = prog_fd(rawip ? Hook::tc_rawip : Hook::tc);
  o.flags = BPF_TC_F_REPLACE;
  if ((err = bpf_tc_attach(&h, &o))) {
    error =
        "cannot attach the tc program on ifindex " + std::to_string(ifindex) + ": " + errstr(err);
    return false;
  }
  at.hook = rawip ? Hook::tc_rawip : Hook::tc;
  at.ifindex = ifindex;
  if (at.note.empty()) at.note = rawip ? "tc (raw IP)" : "tc";
  return true;
}

bool BpfFastPath::attach_xdp(uint8_t port, std::string& error) {
  Attachment& at = attached_[port];
  const int ifindex = devices_[port].ifindex;
  bpf_object* obj = open_xdp_object(error);
  if (!obj) return false;
  xdp_program* prog = xdp_program__from_bpf_obj(obj, "xdp");
  if (!prog || libxdp_get_error(prog)) {
    error =
        "libxdp cannot use the XDP program: " + errstr(static_cast<int>(libxdp_get_error(prog)));
    bpf_object__close(obj);
    return false;
  }
  if (int err = xdp_program__attach(prog, ifindex, XDP_MODE_NATIVE, 0)) {
    error = "libxdp attach (native) on ifindex " + std::to_string(ifindex) + ": " + errstr(err);
    xdp_program__close(prog);
    bpf_object__close(obj);
    return false;
  }
  at.hook = Hook::xdp;
  at.ifindex = ifindex;
  at.xdp_obj = obj;
  at.xdp_prog = prog;
  return true;
}

void BpfFastPath::detach(uint8_t port) {
  if (port >= kMaxPorts) return;
  Attachment& at = attached_[port];
  if (!at.hook) return;
  if (*at.hook == Hook::xdp) {
    xdp_program__detach(at.xdp_prog, at.ifindex, XDP_MODE_NATIVE, 0);
    xdp_program__close(at.xdp_prog);
    bpf_object__close(at.xdp_obj);
  } else {
    bpf_tc_hook h{};
    h.sz = sizeof(h);
    h.ifindex = at.ifindex;
    h.attach_point = BPF_TC_INGRESS;
    bpf_tc_opts o{};
    o.sz = sizeof(o);
    o.handle = kTcHandle;
    o.priority = kTcPriority;
    // Only tetherpath's filter goes. The clsact qdisc stays, even one this engine created: other
    // filters may have joined it since (a clat, a shaper's classifier), and deleting the qdisc
    // would take them along; an empty clsact costs nothing.
    bpf_tc_detach(&h, &o);
  }
  at = Attachment{};
}

std::optional<BpfFastPath::Hook> BpfFastPath::attached_hook(uint8_t port) const {
  return port < kMaxPorts ? attached_[port].hook : std::nullopt;
}

const std::string& BpfFastPath::attach_note(uint8_t port) const {
  static const std::string kNone;
  return port < kMaxPorts ? attached_[port].note : kNone;
}

}  // namespace tp
