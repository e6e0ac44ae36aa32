// The daemon's dataplane with the kernel engine: the tc/XDP programs of dataplane/bpf attached to
// the box's own interfaces (modem0, wifi0, usb0 as the kernel has them). No EAL, no TAP, no
// worker: packets are forwarded in the kernel's receive path and the daemon is only the control
// plane. What it leaves attached when it stops is configured
// (kernel_engine.keep_forwarding_on_exit).
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "bpf_fast_path.hpp"
#include "config.hpp"
#include "dataplane.hpp"

namespace tp {

class KernelRuntime : public Dataplane {
 public:
  explicit KernelRuntime(const conf::Config& cfg);  // throws RuntimeError, leaving nothing behind
  ~KernelRuntime() override;
  KernelRuntime(const KernelRuntime&) = delete;
  KernelRuntime& operator=(const KernelRuntime&) = delete;

  std::string_view engine() const override { return "kernel"; }
  void start() override {}
  // Hands every port back to the kernel (detaches), unless the configuration keeps forwarding
  // across restarts. Idempotent.
  void stop() override;
  FastPath& fast_path() override { return *bpf_; }
  bool has_rules6() const override { return cfg_.offload.ipv6 == conf::Ipv6Mode::neighbours; }
  // Admin state and carrier of the interfaces, their MTUs, and their ifindex: an interface that
  // went away and came back (a modem re-enumerated) gets the programs again.
  void poll_links() override;
  // The interfaces are the kernel's: rtnetlink reports their changes (ControlPlane polls on each),
  // so the timer is only a safety net, and an idle box wakes once a second.
  std::chrono::milliseconds link_poll_interval() const override {
    return std::chrono::milliseconds(1000);
  }
  // Flows and rules a previous run left (pinned state taken over) that this run did not install
  // again go: conntrack no longer has them.
  void resync_complete() override;
  void heartbeat() override { bpf_->heartbeat(); }
  void set_liveness_bound(uint32_t ms) override { bpf_->set_heartbeat_bound(ms); }
  std::size_t port_count() const override { return ports_.size(); }
  PortTotals port_totals(std::size_t port) const override;
  LinkState link_state(std::size_t port) const override {
    return {ports_[port].admin_up, ports_[port].carrier};
  }
  std::size_t worker_count() const override { return 0; }
  WorkerTotals worker_totals(std::size_t) const override { return {}; }
  void report(std::ostream& out) const override;
  bool keeps_forwarding_on_exit() const override {
    return cfg_.kernel_engine.keep_forwarding_on_exit;
  }

  static constexpr uint32_t kIpv6RuleCapacity = 8192;

 private:
  struct PortState {
    conf::PortConfig cfg;
    int ifindex = 0;
    bool rawip = false;
    bool admin_up = false, carrier = false;
    bool usable = false;         // as last reported to on_port_up / on_port_down
    uint16_t mtu = 0, mtu6 = 0;  // as published
  };
  // Reads the interface's ifindex, flags and MTU; with `full` also its type, MAC and IPv6 MTU
  // (procfs). False when it does not exist.
  bool probe(PortState& ps, bool full, EtherAddr* mac, std::string& error) const;
  void attach(uint8_t port);  // throws RuntimeError
  void publish_ports();

  conf::Config cfg_;
  std::unique_ptr<BpfFastPath> bpf_;
  std::vector<PortState> ports_;
  int ioctl_fd_ = -1;  // a datagram socket for SIOCGIF* queries
  unsigned polls_ = 0;
  bool all_xdp_targets_ = false;  // every port's device takes XDP redirects (hook auto)
  bool stopped_ = false;
};

}  // namespace tp
