// The kernel engine behind the FastPath boundary: the tc and XDP programs of this folder, loaded
// from the objects embedded in the library, and their maps. Flows and rules are hash-map entries,
// written whole when created; the topology is published in two banks (maps.h), so a program never
// reads a port or next hop while it is written.
//
// Unpinned (BpfOptions::pin_dir empty), the maps live as long as this object and the programs
// attached through it, and the destructor detaches. Pinned, the state outlives the process so that
// a restarted daemon forwards without a gap:
// - create() pins every map and program in pin_dir (pin_dir_for(bpffs root): a directory per map
//   layout version). If the directory holds this layout's maps already (a run that crashed, or
//   stopped and kept forwarding), it reuses them: reused() is true.
// - On reuse nothing the programs read is reset. The flow and rule maps keep their entries; the
//   inherited keys are recorded, install()/add_rule() of one overwrites it in place (one atomic
//   update per entry) and drop_inherited() deletes those this run did not install. The topology
//   is read back from the published bank (topology() is the previous run's until edited), so the
//   first publish writes the other bank and a re-stated topology changes nothing the programs see;
//   the port devices (ifindex map, XDP devmap) stay as they were until set_port_device() says
//   otherwise. Data limits stay armed with their counts, counters keep counting.
// - attach() on a device that carries this engine's program (a previous run's, or an older build)
//   replaces it atomically: the tc filter with the same handle and priority, the XDP program with
//   XDP_FLAGS_REPLACE against the attached one. It is never detached first.
// - The destructor leaves the programs attached and the pins in place; a clean stop that is not to
//   keep forwarding calls detach_all() and unpin().
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fast_path.hpp"
#include "maps.h"
#include "pinned_state.hpp"

struct bpf_object;
struct xdp_program;

namespace tp {

struct BpfOptions {
  uint32_t flow_capacity = 65536;  // flow directions per address family (one map entry each)
  uint32_t rule_capacity = 1024;   // IPv6 address rules
  // Empty: nothing pinned. Else the directory, on bpffs, that holds the pinned state
  // (BpfFastPath::pin_dir_for). A reused directory's maps must have the capacities above.
  std::string pin_dir{};
  // The programs' clock is CLOCK_MONOTONIC_COARSE where the kernel has bpf_ktime_get_coarse_ns;
  // true: CLOCK_MONOTONIC (bpf_ktime_get_ns) anyway, as on a kernel without it (tests).
  bool fine_clock = false;
};

class BpfFastPath : public FastPath {
 public:
  enum class Hook { tc, tc_rawip, xdp };

  // Loads the programs and creates the maps (or reuses the pinned ones). On failure, `error` says
  // what the kernel lacks, what the verifier refused, or that the pin directory is not on bpffs.
  static std::unique_ptr<BpfFastPath> create(const BpfOptions& opts, std::string& error);

  // Pinned state (see the top of this file).
  static constexpr unsigned kLayoutVersion = TP_MAP_LAYOUT_VERSION;
  // <bpffs_root>/tetherpath/v<kLayoutVersion>
  static std::string pin_dir_for(const std::string& bpffs_root);
  // Other layout versions' directories under <bpffs_root>/tetherpath, for the daemon to remove
  // with remove_pin_dir() once its own programs are attached.
  static std::vector<std::string> stale_pin_dirs(const std::string& bpffs_root);
  // Unpins everything in `dir` and removes it: 0 or -errno.
  static int remove_pin_dir(const std::string& dir);
  const std::string& pin_dir() const { return pin_dir_; }
  // The maps were found pinned: a previous run's flows, rules and topology are in force.
  bool reused() const { return reused_; }
  // Inherited flow directions and rules not yet installed (or removed) by this run.
  std::size_t inherited() const;
  // Deletes every inherited flow direction and rule this run did not install; how many. For after
  // the daemon's first complete conntrack dump: what the kernel still has was overwritten.
  std::size_t drop_inherited();
  // Removes this instance's pins and directory (a stop that is not to keep forwarding; the maps
  // live on while programs attached through them do).
  void unpin();
  // The daemon exits and leaves forwarding to the programs, bounded by the heartbeat: from now on
  // nothing this object is asked changes what they read (flows, rules, topology, limits,
  // attachments), so a teardown that hands flows back cannot unmake the state the next run takes
  // over. Pinned, the destructor then leaves everything attached.
  void keep_as_is() { frozen_ = true; }
  ~BpfFastPath() override;
  BpfFastPath(const BpfFastPath&) = delete;
  BpfFastPath& operator=(const BpfFastPath&) = delete;

  // The device a port's packets arrive on and leave by; `rawip`: it has no link-layer header.
  // 0 or -errno.
  int set_port_device(uint8_t port, int ifindex, bool rawip);
  // The program of a hook (-1 when XDP could not be loaded), e.g. for BPF_PROG_TEST_RUN.
  int prog_fd(Hook hook) const;
  // Whether a hook's loaded programs read the coarse clock (tp_coarse_clock), as the kernel keeps
  // it; nullopt when that hook is not loaded.
  std::optional<bool> coarse_clock(Hook hook) const;
  // The daemon's liveness as the programs see it: heartbeat() stores now (the programs' clock,
  // clock_ms()). With a bound set, once the last heartbeat is older than the bound
  // every program stops forwarding and hands every packet to the kernel (Reason::stale_heartbeat)
  // until the next heartbeat, so a hung daemon leaves no flow forwarded on state it no longer
  // keeps right. 0, the default: no check. Setting a bound beats once first.
  void heartbeat();
  void set_heartbeat_bound(uint32_t ms);

  // Why XDP is unavailable, empty when it loaded.
  const std::string& xdp_unavailable() const { return xdp_error_; }

  // Attaches a port's ingress. XDP falls back to tc when the port's device cannot take the
  // frames other XDP ports redirect to it; attached_hook() and attach_note() say what it got and
  // why. tc uses clsact (created when missing) at priority kTcPriority; detach() removes only
  // that filter and leaves the qdisc, which others' filters may share. A program of this engine
  // already on the device (this object's, a previous run's, an older build's) is replaced
  // atomically, and then removed from the other hook if it was there: packets always meet one of
  // them. attach_note() says whether it replaced an older build.
  bool attach(uint8_t port, Hook hook, std::string& error);
  void detach(uint8_t port);
  void detach_all();
  std::optional<Hook> attached_hook(uint8_t port) const;
  const std::string& attach_note(uint8_t port) const;
  // The id of the program attached on a port's device (libxdp's dispatcher when it holds ours),
  // 0 when none. For `tetherctl ports`, with attach_mode(): "tc clsact ingress", "tc clsact
  // ingress, raw IP", "xdp native", "xdp native, libxdp dispatcher", or "" when not attached.
  uint32_t prog_id(uint8_t port) const;
  std::string attach_mode(uint8_t port) const;
  static constexpr uint16_t kTcPriority = 1;
  static constexpr uint32_t kTcHandle = 0x7470;

  // Data limits on the egress side (tc_egress.cpp): tp_tc_egress on the port's clsact egress, same
  // priority and handle, charges every IP packet that leaves by the port, the kernel's own and
  // those tc redirected to it; from then on the ingress programs leave that charge to it. Detaching
  // removes only the filter, as detach() does.
  bool attach_egress(uint8_t port, std::string& error);
  void detach_egress(uint8_t port);
  // The egress program for a device with or without a link layer, e.g. for BPF_PROG_TEST_RUN.
  int egress_prog_fd(bool rawip) const;

  // FastPath.
  std::string_view name() const override { return "bpf"; }
  void update_topology(const std::function<void(Topology&)>& edit) override;
  Topology topology() const override { return *shadow_; }
  int install(const FlowPlan4& orig, const FlowPlan4& reply) override;
  int install(const FlowPlan6& orig, const FlowPlan6& reply) override;
  void remove(const FlowKey4& orig, const FlowKey4& reply) override;
  void remove(const FlowKey6& orig, const FlowKey6& reply) override;
  std::optional<FlowUsage> usage(const FlowKey4& dir) const override;
  std::optional<FlowUsage> usage(const FlowKey6& dir) const override;
  // Batched deletes (map_batches.cpp) rather than a system call per key.
  void remove_many(std::span<const std::pair<FlowKey4, FlowKey4>> flows) override;
  void remove_many(std::span<const std::pair<FlowKey6, FlowKey6>> flows) override;
  // One dump of the flow map in batches (map_batches.cpp) rather than a lookup per key.
  void read_usage(std::span<const FlowKey4> keys,
                  std::span<std::optional<FlowUsage>> out) const override;
  void read_usage(std::span<const FlowKey6> keys,
                  std::span<std::optional<FlowUsage>> out) const override;
  int add_rule(const RulePlan6& rule) override;
  void remove_rule(const RuleKey6& key) override;
  std::optional<FlowUsage> usage(const RuleKey6& key) const override;
  // The programs' clock in milliseconds: CLOCK_MONOTONIC_COARSE (bpf_ktime_get_coarse_ns), or
  // CLOCK_MONOTONIC (bpf_ktime_get_ns) on a kernel without it (BpfOptions::fine_clock).
  uint32_t clock_ms() const override;
  void arm_limit(uint8_t port, uint64_t limit, uint64_t used) override;
  void disarm_limit(uint8_t port) override;
  uint64_t limit_used(uint8_t port) const override;
  bool limit_reached(uint8_t port) const override;
  PortCounts port_counts(uint8_t port) const override;
  ReasonTotals reasons() const override;

 private:
  BpfFastPath();
  bool load(const BpfOptions& opts, std::string& error);
  bool pin_programs(std::string& error);
  // A reused directory: the published bank, both banks' contents, the topology and the devices
  // as the previous run left them, and the inherited keys.
  bool adopt(std::string& error);
  bpf_object* open_xdp_object(std::string& error) const;
  // Writes the shadow topology into the bank the programs do not read, makes it the published
  // one, and waits until no program still reads the other. False if a write failed (the old
  // topology stays published).
  bool publish();
  std::optional<FlowUsage> usage_of(int map_fd, const void* key) const;
  template <typename Key>
  void read_usage_batched(int map_fd, std::span<const Key> keys,
                          std::span<std::optional<FlowUsage>> out) const;
  template <typename Key>
  static void delete_batched(int map_fd, std::span<const Key> keys);
  template <typename Key>
  void remove_pairs(int map_fd, pinned::InheritedKeys<Key>& inherited,
                    std::span<const std::pair<Key, Key>> flows);
  // tp_config's one value, mapped (null if it cannot be), and stores into it (config_map.cpp).
  void* config_value();
  bool store_bank(uint32_t bank);
  void store_config_u64(size_t offset, uint64_t value);
  bool attach_tc(uint8_t port, bool rawip, std::string& error);
  bool attach_xdp(uint8_t port, std::string& error);
  bool replace_xdp(uint8_t port, uint32_t old_id, std::string& error);
  // Removes this engine's program from the hook of `ifindex` not in use (after the other was
  // attached): our tc filter, or an XDP program named ours.
  static void remove_tc(int ifindex);
  static void remove_xdp(int ifindex, uint32_t keep_id);
  // What replacing the program `old_id` with `fd` means, for the note.
  static std::string replaced(uint32_t old_id, int fd);

  struct Maps {
    int flows4 = -1, flows6 = -1, rules6 = -1, ports = -1, ifindex_port = -1, nexthops = -1,
        kernel_only6 = -1, config = -1, port_totals = -1, reasons = -1, limits = -1, tx_ports = -1;
  };
  struct Device {
    int ifindex = 0;
    bool rawip = false;
    bool xdp_target = false;  // in tp_tx_ports
  };
  struct Attachment {
    std::optional<Hook> hook;
    int ifindex = 0;
    bpf_object* xdp_obj = nullptr;  // libxdp's attachments; a direct one uses xdp_obj_
    xdp_program* xdp_prog = nullptr;
    bool dispatcher = false;
    uint32_t prog_id = 0;
    std::string note;
  };

  bpf_object* tc_obj_ = nullptr;
  bpf_object* xdp_obj_ = nullptr;  // loaded as a plain XDP program, for prog_fd(Hook::xdp)
  std::string xdp_error_;
  Maps maps_;
  int ncpus_ = 1;
  clockid_t clock_ = CLOCK_MONOTONIC_COARSE;  // the programs' (tp_now in forward.h)
  uint64_t clock_ns() const;                  // clock_ now, what heartbeat() stores
  mutable std::array<std::pair<uint64_t, uint64_t>, kMaxPorts> kernel_tx_seen_{};  // port_counts
  std::unique_ptr<Topology> shadow_;
  struct Bank;                                  // what one bank of the maps holds
  std::array<std::unique_ptr<Bank>, 2> banks_;  // each bank's content, as written
  uint32_t bank_ = 0;                           // the published bank
  std::array<Device, kMaxPorts> devices_{};
  std::array<Attachment, kMaxPorts> attached_{};
  struct Mapping {
    void* addr = nullptr;
    size_t len = 0;
    ~Mapping();
  };
  Mapping config_map_;
  std::string pin_dir_;
  bool reused_ = false;
  bool frozen_ = false;  // keep_as_is()
  pinned::InheritedKeys<FlowKey4> inherited4_;
  pinned::InheritedKeys<FlowKey6> inherited6_;
  pinned::InheritedKeys<RuleKey6> inherited_rules_;
  std::array<int, kMaxPorts> egress_ifindex_{};  // where tp_tc_egress is attached, 0: nowhere
};

}  // namespace tp
