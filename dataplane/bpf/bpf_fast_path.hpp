// The kernel engine behind the FastPath boundary: the tc and XDP programs of this folder, loaded
// from the objects embedded in the library, and their maps. Flows and rules are hash-map entries,
// written whole when created; the topology is published in two banks (maps.h), so a program never
// reads a port or next hop while it is written. The maps stay unpinned: they live as long as this
// object and the programs attached through it.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "fast_path.hpp"

struct bpf_object;
struct xdp_program;

namespace tp {

struct BpfOptions {
  uint32_t flow_capacity = 65536;  // flow directions per address family (one map entry each)
  uint32_t rule_capacity = 1024;   // IPv6 address rules
};

class BpfFastPath : public FastPath {
 public:
  enum class Hook { tc, tc_rawip, xdp };

  // Loads the programs and creates the maps. On failure, `error` says what the kernel lacks or
  // what the verifier refused.
  static std::unique_ptr<BpfFastPath> create(const BpfOptions& opts, std::string& error);
  ~BpfFastPath() override;
  BpfFastPath(const BpfFastPath&) = delete;
  BpfFastPath& operator=(const BpfFastPath&) = delete;

  // The device a port's packets arrive on and leave by; `rawip`: it has no link-layer header.
  // 0 or -errno.
  int set_port_device(uint8_t port, int ifindex, bool rawip);
  // The program of a hook (-1 when XDP could not be loaded), e.g. for BPF_PROG_TEST_RUN.
  int prog_fd(Hook hook) const;
  // The daemon's liveness as the programs see it: heartbeat() stores now (CLOCK_MONOTONIC, the
  // clock of bpf_ktime_get_ns). With a bound set, once the last heartbeat is older than the bound
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
  // that filter and leaves the qdisc, which others' filters may share.
  bool attach(uint8_t port, Hook hook, std::string& error);
  void detach(uint8_t port);
  std::optional<Hook> attached_hook(uint8_t port) const;
  const std::string& attach_note(uint8_t port) const;
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
  // One dump of the flow map in batches (read_usage.cpp) rather than a lookup per key.
  void read_usage(std::span<const FlowKey4> keys,
                  std::span<std::optional<FlowUsage>> out) const override;
  void read_usage(std::span<const FlowKey6> keys,
                  std::span<std::optional<FlowUsage>> out) const override;
  int add_rule(const RulePlan6& rule) override;
  void remove_rule(const RuleKey6& key) override;
  std::optional<FlowUsage> usage(const RuleKey6& key) const override;
  // CLOCK_MONOTONIC in milliseconds: the clock of bpf_ktime_get_ns().
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
  bpf_object* open_xdp_object(std::string& error) const;
  // Writes the shadow topology into the bank the programs do not read, makes it the published
  // one, and waits until no program still reads the other. False if a write failed (the old
  // topology stays published).
  bool publish();
  std::optional<FlowUsage> usage_of(int map_fd, const void* key) const;
  template <typename Key>
  void read_usage_batched(int map_fd, std::span<const Key> keys,
                          std::span<std::optional<FlowUsage>> out) const;
  // tp_config's one value, mapped (null if it cannot be), and stores into it (config_map.cpp).
  void* config_value();
  bool store_bank(uint32_t bank);
  void store_config_u64(size_t offset, uint64_t value);
  bool attach_tc(uint8_t port, bool rawip, std::string& error);
  bool attach_xdp(uint8_t port, std::string& error);

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
    bpf_object* xdp_obj = nullptr;
    xdp_program* xdp_prog = nullptr;
    std::string note;
  };

  bpf_object* tc_obj_ = nullptr;
  bpf_object* xdp_obj_ = nullptr;  // loaded as a plain XDP program, for prog_fd(Hook::xdp)
  std::string xdp_error_;
  Maps maps_;
  int ncpus_ = 1;
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
  std::array<int, kMaxPorts> egress_ifindex_{};  // where tp_tc_egress is attached, 0: nowhere
};

}  // namespace tp
