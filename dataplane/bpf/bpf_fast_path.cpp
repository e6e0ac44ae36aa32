#include "bpf_fast_path.hpp"
#include "tc_filter.hpp"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <linux/membarrier.h>
#include <linux/pfkeyv2.h>
#include <net/if.h>
#include <sys/socket.h>
#include <sys/stat.h>
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
#include "pinned_state.hpp"
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

// Where a one-byte variable lies in the object's .rodata (its BTF says), if it is there.
std::optional<uint32_t> rodata_u8_offset(const bpf_object* obj, const char* var) {
  const btf* b = bpf_object__btf(obj);
  const int sec = b ? btf__find_by_name_kind(b, ".rodata", BTF_KIND_DATASEC) : -1;
  if (sec < 0) return std::nullopt;
  const btf_type* t = btf__type_by_id(b, static_cast<uint32_t>(sec));
  const btf_var_secinfo* v = btf_var_secinfos(t);
  for (uint16_t i = 0; i < btf_vlen(t); ++i, ++v) {
    const char* name = btf__name_by_offset(b, btf__type_by_id(b, v->type)->name_off);
    if (name && std::strcmp(name, var) == 0 && v->size == 1) return v->offset;
  }
  return std::nullopt;
}

// Sets a `const volatile __u8` of the object's .rodata before the object is loaded.
bool set_rodata_u8(bpf_object* obj, const char* var, uint8_t value) {
  bpf_map* rodata = bpf_object__find_map_by_name(obj, ".rodata");
  const auto off = rodata_u8_offset(obj, var);
  size_t size = 0;
  const auto* data =
      rodata ? static_cast<const uint8_t*>(bpf_map__initial_value(rodata, &size)) : nullptr;
  if (!off || !data || *off >= size) return false;
  std::vector<uint8_t> init(data, data + size);
  init[*off] = value;
  return bpf_map__set_initial_value(rodata, init.data(), size) == 0;
}

// The value a loaded object's programs read (from the kernel's copy of its .rodata).
std::optional<uint8_t> loaded_rodata_u8(const bpf_object* obj, const char* var) {
  const bpf_map* rodata = bpf_object__find_map_by_name(obj, ".rodata");
  const auto off = rodata_u8_offset(obj, var);
  if (!rodata || !off || *off >= bpf_map__value_size(rodata)) return std::nullopt;
  std::vector<uint8_t> value(bpf_map__value_size(rodata));
  const uint32_t zero = 0;
  if (bpf_map_lookup_elem(bpf_map__fd(rodata), &zero, value.data()) != 0) return std::nullopt;
  return value[*off];
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

// The kernel's name (truncated to 15 characters) and tag of a program.
struct ProgInfo {
  std::string name;
  std::array<uint8_t, BPF_TAG_SIZE> tag{};
  uint32_t id = 0;
};

std::optional<ProgInfo> info_of_fd(int fd) {
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  if (fd < 0 || bpf_obj_get_info_by_fd(fd, &info, &len) != 0) return std::nullopt;
  ProgInfo p;
  p.name = info.name;
  std::memcpy(p.tag.data(), info.tag, BPF_TAG_SIZE);
  p.id = info.id;
  return p;
}

std::optional<ProgInfo> info_of_id(uint32_t id) {
  const int fd = bpf_prog_get_fd_by_id(id);
  if (fd < 0) return std::nullopt;
  auto info = info_of_fd(fd);
  close(fd);
  return info;
}

std::string hex(const std::array<uint8_t, BPF_TAG_SIZE>& tag) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (uint8_t b : tag) {
    s += digits[b >> 4];
    s += digits[b & 15];
  }
  return s;
}

constexpr const char* kXdpName = "tp_xdp";  // the XDP program's name, as the kernel keeps it
constexpr const char* kDispatcherName = "xdp_dispatcher";

uint32_t xdp_prog_on(int ifindex) {
  bpf_xdp_query_opts q{};
  q.sz = sizeof(q);
  if (bpf_xdp_query(ifindex, 0, &q) != 0) return 0;
  return q.drv_prog_id;
}

// The id of the program in our tc filter on `ifindex`, 0 when there is none.
uint32_t tc_prog_on(int ifindex) {
  bpf_tc_hook h = tc_hook(ifindex, BPF_TC_INGRESS);
  bpf_tc_opts o = tc_filter();
  return bpf_tc_query(&h, &o) == 0 ? o.prog_id : 0;
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
  // Pinned state outlives the process: the programs stay attached and keep forwarding, for the
  // next run to take over. Only libxdp's handles are let go.
  if (pin_dir_.empty()) {
    detach_all();
  } else {
    for (Attachment& at : attached_) {
      if (at.xdp_prog) xdp_program__close(at.xdp_prog);
      if (at.xdp_obj) bpf_object__close(at.xdp_obj);
    }
  }
  if (xdp_obj_) bpf_object__close(xdp_obj_);
  if (tc_obj_) bpf_object__close(tc_obj_);
}

std::unique_ptr<BpfFastPath> BpfFastPath::create(const BpfOptions& opts, std::string& error) {
  std::unique_ptr<BpfFastPath> fp(new BpfFastPath());
  if (!fp->load(opts, error)) return nullptr;
  if (fp->reused_) {
    if (!fp->adopt(error)) return nullptr;
  } else {
    fp->update_topology([](Topology&) {});  // the maps start out holding the empty topology
  }
  return fp;
}

std::string BpfFastPath::pin_dir_for(const std::string& bpffs_root) {
  return pinned::dir_for(bpffs_root, kLayoutVersion);
}

std::vector<std::string> BpfFastPath::stale_pin_dirs(const std::string& bpffs_root) {
  return pinned::stale_dirs(bpffs_root, kLayoutVersion);
}

int BpfFastPath::remove_pin_dir(const std::string& dir) { return pinned::remove_dir(dir); }

void BpfFastPath::unpin() {
  if (pin_dir_.empty()) return;
  pinned::remove_dir(pin_dir_);
  // The versions' parent goes too when this was its last version.
  const size_t slash = pin_dir_.find_last_of('/');
  if (slash != std::string::npos && slash > 0) rmdir(pin_dir_.substr(0, slash).c_str());
  pin_dir_.clear();
  inherited4_ = {};
  inherited6_ = {};
  inherited_rules_ = {};
}

std::size_t BpfFastPath::inherited() const {
  return inherited4_.size() + inherited6_.size() + inherited_rules_.size();
}

std::size_t BpfFastPath::drop_inherited() {
  return inherited4_.drop(maps_.flows4) + inherited6_.drop(maps_.flows6) +
         inherited_rules_.drop(maps_.rules6);
}

bool BpfFastPath::pin_programs(std::string& error) {
  // For inspection (bpftool) and so that the programs in force are found by path; the attached
  // ones live on without them. A new build's replace the previous run's.
  for (bpf_object* obj : {tc_obj_, xdp_obj_}) {
    if (!obj) continue;
    bpf_program* prog;
    bpf_object__for_each_program(prog, obj) {
      const std::string path = pin_dir_ + "/prog_" + bpf_program__name(prog);
      unlink(path.c_str());
      if (int err = bpf_program__pin(prog, path.c_str())) {
        error = "cannot pin " + path + ": " + errstr(err);
        return false;
      }
    }
  }
  return true;
}

bool BpfFastPath::adopt(std::string& error) {
  const uint32_t zero = 0;
  tp_config cfg{};
  if (bpf_map_lookup_elem(maps_.config, &zero, &cfg) != 0 || cfg.bank >= TP_BANKS) {
    error = "the pinned configuration in " + pin_dir_ + " is unreadable or holds no valid bank";
    return false;
  }
  bank_ = cfg.bank;
  // Both banks as the maps hold them, so that publishing writes exactly what differs.
  for (uint32_t b = 0; b < TP_BANKS; ++b) {
    Bank& bank = *banks_[b];
    for (uint32_t p = 0; p < kMaxPorts; ++p) {
      const uint32_t key = b * kMaxPorts + p;
      if (bpf_map_lookup_elem(maps_.ports, &key, &bank.ports[p]) != 0) bank.ports[p] = tp_port{};
    }
    for (uint32_t i = 0; i < kMaxNextHops; ++i) {
      const uint32_t key = b * kMaxNextHops + i;
      if (bpf_map_lookup_elem(maps_.nexthops, &key, &bank.nexthops[i]) != 0)
        bank.nexthops[i] = tp_nexthop{};
    }
    if (bpf_map_lookup_elem(maps_.kernel_only6, &b, &bank.kernel_only6) != 0)
      bank.kernel_only6 = tp_kernel_only6{};
  }
  // The published topology becomes the shadow: a daemon that states it again changes nothing.
  const Bank& live = *banks_[bank_];
  for (uint8_t p = 0; p < kMaxPorts; ++p) {
    const tp_port& v = live.ports[p];
    PortInfo& port = shadow_->ports[p];
    port.enabled = v.enabled;
    std::memcpy(port.mac.addr_bytes, v.mac, 6);
    port.mtu = v.mtu;
    port.mtu6 = v.mtu6;
    port.n_local4 = v.n_local4;
    port.n_local6 = v.n_local6;
    for (size_t i = 0; i < kMaxLocalAddrs; ++i) {
      port.local4[i] = v.local4[i];
      std::memcpy(port.local6[i].data(), v.local6[i], 16);
    }
    devices_[p].rawip = v.rawip;
  }
  for (uint32_t i = 0; i < kMaxNextHops; ++i) {
    const tp_nexthop& v = live.nexthops[i];
    NextHop& nh = shadow_->nexthops[i];
    std::memcpy(nh.dst_mac.addr_bytes, v.dst_mac, 6);
    std::memcpy(nh.src_mac.addr_bytes, v.src_mac, 6);
    nh.port = v.port;
    nh.mtu = v.mtu;
    nh.vlan = v.vlan;
    nh.valid = v.valid;
  }
  shadow_->n_kernel_only6 =
      static_cast<uint8_t>(std::min<uint32_t>(live.kernel_only6.n, kMaxKernelOnly6));
  std::memcpy(shadow_->kernel_only6.data(), live.kernel_only6.prefix,
              sizeof(tp_prefix6) * kMaxKernelOnly6);
  // The port devices, from the map the programs find their port by.
  uint32_t ifindex = 0, next = 0;
  const uint32_t* prev = nullptr;
  while (bpf_map_get_next_key(maps_.ifindex_port, prev, &next) == 0) {
    uint32_t port = 0;
    if (bpf_map_lookup_elem(maps_.ifindex_port, &next, &port) == 0 && port < kMaxPorts) {
      devices_[port].ifindex = static_cast<int>(next);
      uint32_t target = 0;
      devices_[port].xdp_target = bpf_map_lookup_elem(maps_.tx_ports, &port, &target) == 0;
    }
    ifindex = next;
    prev = &ifindex;
  }
  for (const int err : {inherited4_.load(maps_.flows4), inherited6_.load(maps_.flows6),
                        inherited_rules_.load(maps_.rules6)}) {
    if (err) {
      error = "cannot read the pinned flows in " + pin_dir_ + ": " + errstr(err);
      return false;
    }
  }
  return true;
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
  if (!opts.pin_dir.empty() && !pinned::make_dir(opts.pin_dir, error)) return false;
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
  // Pinned: libbpf reuses a map found at its path (after checking its type, sizes and capacity)
  // and pins the ones it creates.
  int found = 0;
  if (!opts.pin_dir.empty()) {
    bpf_map* m;
    bpf_object__for_each_map(m, tc_obj_) {
      if (bpf_map__is_internal(m)) continue;
      const std::string path = opts.pin_dir + "/" + bpf_map__name(m);
      if (int err = bpf_map__set_pin_path(m, path.c_str())) {
        error = "cannot pin at " + path + ": " + errstr(err);
        return false;
      }
      struct stat st {};
      if (stat(path.c_str(), &st) != 0) continue;
      ++found;
      // The kernel makes a device map read-only for programs and says so in its flags, which
      // libbpf compares with the definition's before reusing it (a creation must not ask).
      if (bpf_map__type(m) == BPF_MAP_TYPE_DEVMAP)
        bpf_map__set_map_flags(m, bpf_map__map_flags(m) | BPF_F_RDONLY_PROG);
    }
  }
  // The programs' clock (tp_now in forward.h): the coarse one where the kernel has it.
  if (opts.fine_clock || libbpf_probe_bpf_helper(BPF_PROG_TYPE_SCHED_CLS,
                                                 BPF_FUNC_ktime_get_coarse_ns, nullptr) != 1) {
    if (!set_rodata_u8(tc_obj_, "tp_coarse_clock", 0)) {
      error = "the embedded tc program has no tp_coarse_clock (a build defect)";
      return false;
    }
    clock_ = CLOCK_MONOTONIC;
  }
  if (int err = bpf_object__load(tc_obj_)) {
    const std::string missing = missing_features();
    error = "cannot load the tc programs (" + errstr(err) + ")";
    if (found)
      error += ": the maps pinned in " + opts.pin_dir +
               " do not match this build's (another capacity?); remove the directory "
               "(BpfFastPath::remove_pin_dir) to start afresh";
    if (!missing.empty()) error += ": the kernel lacks " + missing;
    if (err == -EPERM) error += "; loading BPF programs needs CAP_BPF and CAP_NET_ADMIN (root)";
    error += "\n" + tail(log);
    return false;
  }
  pin_dir_ = opts.pin_dir;
  reused_ = found > 0;
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
  return pin_dir_.empty() || pin_programs(error);
}

// An XDP object whose maps are the tc object's: one write is seen by every hook.
bpf_object* BpfFastPath::open_xdp_object(std::string& error) const {
  bpf_object* obj = bpf_object__open_mem(tp_bpf_xdp_obj, tp_bpf_xdp_obj_size, nullptr);
  if (!obj) {
    error = "cannot open the embedded XDP program: " + errstr(errno);
    return nullptr;
  }
  if (clock_ != CLOCK_MONOTONIC_COARSE && !set_rodata_u8(obj, "tp_coarse_clock", 0)) {
    error = "the embedded XDP program has no tp_coarse_clock (a build defect)";
    bpf_object__close(obj);
    return nullptr;
  }
  bpf_map* m;
  bpf_object__for_each_map(m, obj) {
    if (bpf_map__is_internal(m)) continue;  // the object's own sections (.rodata, run config)
    const int fd = map_fd(tc_obj_, bpf_map__name(m));
    if (fd < 0) continue;
    if (int err = bpf_map__reuse_fd(m, fd)) {
      error = std::string("cannot share map ") + bpf_map__name(m) + ": " + errstr(err);
      bpf_object__close(obj);
      return nullptr;
    }
  }
  return obj;
}

std::optional<bool> BpfFastPath::coarse_clock(Hook hook) const {
  const bpf_object* obj = hook == Hook::xdp ? xdp_obj_ : tc_obj_;
  if (!obj) return std::nullopt;
  const auto flag = loaded_rodata_u8(obj, "tp_coarse_clock");
  if (!flag) return std::nullopt;
  return *flag != 0;
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
  if (frozen_) return;
  edit(*shadow_);
  publish();
}

namespace {

// One entry written whole. A key inherited from a previous run is overwritten in place (the
// programs go on forwarding it, with the old plan or the new, never without), keeping the time it
// was last used and its counts (the few packets counted between the read and the write are lost
// to them); `old` receives what it held, for an undo. Any other key must be new.
template <typename Key>
int put_entry(int fd, pinned::InheritedKeys<Key>& inherited, const Key& k, tp_action a,
              std::optional<tp_action>& old) {
  old.reset();
  tp_action prev{};
  if (inherited.contains(k) && bpf_map_lookup_elem(fd, &k, &prev) == 0) {
    a.last_used_ns = prev.last_used_ns;
    a.packets = prev.packets;
    a.ip_bytes = prev.ip_bytes;
    if (bpf_map_update_elem(fd, &k, &a, BPF_ANY)) return install_error(errno);
    old = prev;
    return 0;
  }
  if (bpf_map_update_elem(fd, &k, &a, BPF_NOEXIST)) return install_error(errno);
  return 0;
}

template <typename Key>
int install_pair(int fd, pinned::InheritedKeys<Key>& inherited, const Key& k1, const tp_action& a1,
                 const Key& k2, const tp_action& a2) {
  std::optional<tp_action> old1, old2;
  if (int err = put_entry(fd, inherited, k1, a1, old1)) return err;
  if (int err = put_entry(fd, inherited, k2, a2, old2)) {
    if (old1)
      bpf_map_update_elem(fd, &k1, &*old1, BPF_ANY);
    else
      bpf_map_delete_elem(fd, &k1);
    return err;
  }
  inherited.erase(k1);
  inherited.erase(k2);
  return 0;
}

bool valid_plan(const FlowPlan4& p) {
  return p.nexthop < kMaxNextHops && p.rewrite <= Rewrite::dnat;
}

}  // namespace

int BpfFastPath::install(const FlowPlan4& orig, const FlowPlan4& reply) {
  if (!valid_plan(orig) || !valid_plan(reply) || orig.match == reply.match) return -EINVAL;
  return install_pair(maps_.flows4, inherited4_, orig.match, action_of(orig), reply.match,
                      action_of(reply));
}

int BpfFastPath::install(const FlowPlan6& orig, const FlowPlan6& reply) {
  if (orig.nexthop >= kMaxNextHops || reply.nexthop >= kMaxNextHops || orig.match == reply.match)
    return -EINVAL;
  return install_pair(maps_.flows6, inherited6_, orig.match, route_action(orig.nexthop),
                      reply.match, route_action(reply.nexthop));
}

void BpfFastPath::remove(const FlowKey4& orig, const FlowKey4& reply) {
  if (frozen_) return;
  bpf_map_delete_elem(maps_.flows4, &orig);
  bpf_map_delete_elem(maps_.flows4, &reply);
  inherited4_.erase(orig);
  inherited4_.erase(reply);
}

void BpfFastPath::remove(const FlowKey6& orig, const FlowKey6& reply) {
  if (frozen_) return;
  bpf_map_delete_elem(maps_.flows6, &orig);
  bpf_map_delete_elem(maps_.flows6, &reply);
  inherited6_.erase(orig);
  inherited6_.erase(reply);
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
  std::optional<tp_action> old;
  if (int err =
          put_entry(maps_.rules6, inherited_rules_, rule.match, route_action(rule.nexthop), old))
    return err;
  inherited_rules_.erase(rule.match);
  return 0;
}

void BpfFastPath::remove_rule(const RuleKey6& key) {
  if (frozen_) return;
  bpf_map_delete_elem(maps_.rules6, &key);
  inherited_rules_.erase(key);
}

uint64_t BpfFastPath::clock_ns() const {
  timespec ts{};
  clock_gettime(clock_, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000 + static_cast<uint64_t>(ts.tv_nsec);
}

uint32_t BpfFastPath::clock_ms() const { return static_cast<uint32_t>(clock_ns() / 1000000); }

// Counting restarts at `used`. Disarmed first, so that no program adds to the old count under the
// new limit; adds racing with the update are lost, which is what restarting the count means.
void BpfFastPath::arm_limit(uint8_t port, uint64_t limit, uint64_t used) {
  if (frozen_) return;
  if (port >= kMaxPorts) return;
  uint32_t key = port;
  tp_limit v{0, limit, used};
  bpf_map_update_elem(maps_.limits, &key, &v, BPF_ANY);
  v.armed = 1;
  bpf_map_update_elem(maps_.limits, &key, &v, BPF_ANY);
}

void BpfFastPath::disarm_limit(uint8_t port) {
  if (frozen_) return;
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
  std::pair<uint64_t, uint64_t> egress{};  // the kernel's packets and bytes: wraps, summed
  for (const tp_port_totals& c : per_cpu) {
    t.rx_packets += c.rx_packets;
    t.rx_ip_bytes += c.rx_ip_bytes;
    t.fwd_rx_packets += c.fwd_rx_packets;
    t.fwd_rx_bytes += c.fwd_rx_bytes;
    t.fwd_tx_packets += c.fwd_tx_packets;
    t.fwd_tx_bytes += c.fwd_tx_bytes;
    t.punted += c.punted;
    t.dropped += c.dropped;
    egress.first += c.egress_packets - c.fwd_tx_tc_packets;
    egress.second += c.egress_ip_bytes - c.fwd_tx_tc_bytes;
  }
  // A redirect counted at ingress may not be counted at egress yet.
  auto& seen = kernel_tx_seen_[port];
  t.kernel_tx_packets = never_decreasing(seen.first, egress.first);
  t.kernel_tx_bytes = never_decreasing(seen.second, egress.second);
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
  // The program in place (this object's, or a previous run's) keeps forwarding until the new one
  // replaces it; only then is the hook not in use cleared.
  Attachment old = std::move(attached_[port]);
  attached_[port] = Attachment{};
  const Device& d = devices_[port];
  Attachment& at = attached_[port];
  bool ok = false;
  if (hook == Hook::xdp) {
    std::string why;
    if (d.rawip) {
      at.note = "XDP needs an Ethernet device; tc used";
    } else if (!xdp_obj_) {
      at.note = "XDP unavailable (" + xdp_error_ + "); tc used";
    } else if (xdp_redirect_target(d.ifindex, why) != XdpTarget::yes) {
      at.note = "XDP not used: " + why + "; tc used";
    } else if (attach_xdp(port, why)) {
      at.note = "XDP (native)" + at.note;
      ok = true;
    } else {
      at.note = "XDP attach failed (" + why + "); tc used";
    }
  }
  if (!ok) ok = attach_tc(port, d.rawip || hook == Hook::tc_rawip, error);
  if (!ok) {
    attached_[port] = std::move(old);
    return false;
  }
  if (*at.hook == Hook::xdp)
    remove_tc(at.ifindex);
  else
    remove_xdp(at.ifindex, 0);
  if (old.hook && old.ifindex != at.ifindex) {
    // The port moved to another device: the old one keeps nothing of ours.
    std::swap(attached_[port], old);
    detach(port);
    std::swap(attached_[port], old);
  } else {
    if (old.xdp_prog) xdp_program__close(old.xdp_prog);
    if (old.xdp_obj) bpf_object__close(old.xdp_obj);
  }
  return true;
}

std::string BpfFastPath::replaced(uint32_t old_id, int fd) {
  const auto before = info_of_id(old_id);
  const auto now = info_of_fd(fd);
  if (!before || !now) return "; replaced program " + std::to_string(old_id);
  if (before->tag == now->tag)
    return "; took over program " + std::to_string(old_id) + " (same build)";
  return "; replaced program " + std::to_string(old_id) + " of another build (tag " +
         hex(before->tag) + ", now " + hex(now->tag) + ")";
}

bool BpfFastPath::attach_tc(uint8_t port, bool rawip, std::string& error) {
  Attachment& at = attached_[port];
  const int ifindex = devices_[port].ifindex;
  bpf_tc_hook h = tc_hook(ifindex, BPF_TC_INGRESS);
  int err = bpf_tc_hook_create(&h);
  if (err && err != -EEXIST) {
    error = "cannot create clsact on ifindex " + std::to_string(ifindex) + ": " + errstr(err);
    return false;
  }
  const uint32_t old_id = tc_prog_on(ifindex);
  // The same handle and priority with the replace flag: the kernel swaps the filter's program in
  // one step, so a previous run's filter (or this object's) never leaves a gap.
  bpf_tc_opts o = tc_filter(prog_fd(rawip ? Hook::tc_rawip : Hook::tc));
  if ((err = bpf_tc_attach(&h, &o))) {
    error =
        "cannot attach the tc program on ifindex " + std::to_string(ifindex) + ": " + errstr(err);
    return false;
  }
  at.hook = rawip ? Hook::tc_rawip : Hook::tc;
  at.ifindex = ifindex;
  at.prog_id = o.prog_id;
  if (at.note.empty()) at.note = rawip ? "tc (raw IP)" : "tc";
  if (old_id) at.note += replaced(old_id, o.prog_fd);
  return true;
}

bool BpfFastPath::attach_xdp(uint8_t port, std::string& error) {
  Attachment& at = attached_[port];
  const int ifindex = devices_[port].ifindex;
  const uint32_t old_id = xdp_prog_on(ifindex);
  const auto old = old_id ? info_of_id(old_id) : std::nullopt;
  if (old && old->name == kXdpName) return replace_xdp(port, old_id, error);
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
  at.prog_id = xdp_prog_on(ifindex);
  const auto main = info_of_id(at.prog_id);
  at.dispatcher = main && main->name == kDispatcherName;
  // A previous run's program in libxdp's dispatcher: ours now runs next to it (libxdp swaps the
  // dispatcher atomically), and it goes the same way.
  if (at.dispatcher) {
    remove_xdp(ifindex, xdp_program__id(prog));
    at.prog_id = xdp_prog_on(ifindex);
  }
  return true;
}

// Our XDP program alone on the device (libxdp attached it without its dispatcher, which does not
// load everywhere): XDP_FLAGS_REPLACE against the attached program's descriptor, so the kernel
// swaps it only if it is still the one seen, and in one step.
bool BpfFastPath::replace_xdp(uint8_t port, uint32_t old_id, std::string& error) {
  Attachment& at = attached_[port];
  const int ifindex = devices_[port].ifindex;
  const int old_fd = bpf_prog_get_fd_by_id(old_id);
  if (old_fd < 0) {
    error = "cannot open the attached XDP program " + std::to_string(old_id) + ": " + errstr(errno);
    return false;
  }
  bpf_xdp_attach_opts o{};
  o.sz = sizeof(o);
  o.old_prog_fd = old_fd;
  const int fd = prog_fd(Hook::xdp);
  const int err = bpf_xdp_attach(ifindex, fd, XDP_FLAGS_DRV_MODE | XDP_FLAGS_REPLACE, &o);
  close(old_fd);
  if (err) {
    error =
        "cannot replace the XDP program on ifindex " + std::to_string(ifindex) + ": " + errstr(err);
    return false;
  }
  at.hook = Hook::xdp;
  at.ifindex = ifindex;
  at.prog_id = info_of_fd(fd) ? info_of_fd(fd)->id : 0;
  at.note = replaced(old_id, fd);
  return true;
}

void BpfFastPath::remove_tc(int ifindex) {
  bpf_tc_hook h = tc_hook(ifindex, BPF_TC_INGRESS);
  bpf_tc_opts o = tc_filter();
  if (tc_prog_on(ifindex)) bpf_tc_detach(&h, &o);
}

void BpfFastPath::remove_xdp(int ifindex, uint32_t keep_id) {
  const uint32_t id = xdp_prog_on(ifindex);
  const auto info = id ? info_of_id(id) : std::nullopt;
  if (!info) return;
  if (info->name == kXdpName && id != keep_id) {
    const int fd = bpf_prog_get_fd_by_id(id);
    if (fd < 0) return;
    bpf_xdp_attach_opts o{};
    o.sz = sizeof(o);
    o.old_prog_fd = fd;  // only if it is still this program
    bpf_xdp_detach(ifindex, XDP_FLAGS_DRV_MODE | XDP_FLAGS_REPLACE, &o);
    close(fd);
    return;
  }
  if (info->name != kDispatcherName) return;
  xdp_multiprog* mp = xdp_multiprog__get_from_ifindex(ifindex);
  if (!mp || libxdp_get_error(mp)) return;
  for (xdp_program* p = xdp_multiprog__next_prog(nullptr, mp); p;
       p = xdp_multiprog__next_prog(p, mp)) {
    if (std::strcmp(xdp_program__name(p), kXdpName) == 0 && xdp_program__id(p) != keep_id)
      xdp_program__detach(p, ifindex, XDP_MODE_NATIVE, 0);
  }
  xdp_multiprog__close(mp);
}

void BpfFastPath::detach(uint8_t port) {
  if (frozen_) return;
  if (port >= kMaxPorts) return;
  Attachment& at = attached_[port];
  if (!at.hook) return;
  if (*at.hook == Hook::xdp) {
    if (at.xdp_prog) {
      xdp_program__detach(at.xdp_prog, at.ifindex, XDP_MODE_NATIVE, 0);
      xdp_program__close(at.xdp_prog);
      bpf_object__close(at.xdp_obj);
    } else {
      remove_xdp(at.ifindex, 0);
    }
  } else {
    // Only tetherpath's filter goes. The clsact qdisc stays, even one this engine created: other
    // filters may have joined it since (a clat, a shaper's classifier), and deleting the qdisc
    // would take them along; an empty clsact costs nothing.
    bpf_tc_hook h = tc_hook(at.ifindex, BPF_TC_INGRESS);
    bpf_tc_opts o = tc_filter();
    bpf_tc_detach(&h, &o);
  }
  at = Attachment{};
}

void BpfFastPath::detach_all() {
  for (uint8_t p = 0; p < kMaxPorts; ++p) {
    detach(p);
    detach_egress(p);
  }
}

uint32_t BpfFastPath::prog_id(uint8_t port) const {
  return port < kMaxPorts && attached_[port].hook ? attached_[port].prog_id : 0;
}

std::string BpfFastPath::attach_mode(uint8_t port) const {
  if (port >= kMaxPorts || !attached_[port].hook) return "";
  switch (*attached_[port].hook) {
    case Hook::tc:
      return "tc clsact ingress";
    case Hook::tc_rawip:
      return "tc clsact ingress, raw IP";
    case Hook::xdp:
      return attached_[port].dispatcher ? "xdp native, libxdp dispatcher" : "xdp native";
  }
  return "";
}

std::optional<BpfFastPath::Hook> BpfFastPath::attached_hook(uint8_t port) const {
  return port < kMaxPorts ? attached_[port].hook : std::nullopt;
}

const std::string& BpfFastPath::attach_note(uint8_t port) const {
  static const std::string kNone;
  return port < kMaxPorts ? attached_[port].note : kNone;
}

}  // namespace tp
