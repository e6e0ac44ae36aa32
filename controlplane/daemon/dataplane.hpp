// What the daemon runs packets with, whichever engine it is: the DPDK runtime (workers, TAPs, the
// exception path) or the kernel engine's runtime (tc/XDP programs on the box's own interfaces).
// The control plane drives the engine through fast_path() and reads ports, counters and link
// state through this; it never needs to know which one it has.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "fast_path.hpp"

namespace tp {

struct RuntimeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// How a port is attached: which engine carries it, through which hook, and the program that runs
// there (DPDK over AF_XDP has one too).
struct PortAttachment {
  std::string engine;  // dpdk, kernel
  std::string hook;    // dpdk: pmd or af_xdp; kernel: xdp, tc, tc-rawip
  std::string mode;    // e.g. "native", "clsact ingress"; empty when not attached
  uint32_t program_id = 0;
  std::string program;  // its name (AF_XDP: under libxdp's dispatcher, the first of `programs`)
  int programs = 0;
  std::string note;  // why the hook differs from what was asked, if it does
};

// A port's counts for reports, the API and metrics: the engine's, and what the runtime adds.
struct PortTotals : PortCounts {
  std::string name;
  std::string link;  // up, no-carrier, down
  PortAttachment attachment;
  uint64_t injected_ip_bytes = 0;
  // DPDK only: the exception path and the PMD.
  uint64_t to_kernel = 0, from_kernel = 0, exception_drops = 0;
  uint64_t pmd_tx_packets = 0, rx_missed = 0, rx_nombuf = 0;
};

struct WorkerTotals {
  unsigned lcore = 0;
  uint64_t busy_cycles = 0, idle_cycles = 0, packets = 0, bursts = 0, injected = 0, sleeps = 0;
  uint64_t punt_ring_full = 0, tx_dropped = 0;
  uint64_t clocks_per_packet() const {
    return packets + injected ? busy_cycles / (packets + injected) : 0;
  }
};

class Dataplane {
 public:
  virtual ~Dataplane() = default;
  virtual std::string_view engine() const = 0;

  virtual void start() = 0;
  virtual void stop() = 0;  // idempotent

  virtual FastPath& fast_path() = 0;
  // Whether IPv6 address rules are available (offload.ipv6: neighbours).
  virtual bool has_rules6() const = 0;

  // Control thread, every link_poll_interval() and after each rtnetlink change: link state and
  // MTUs to the topology. Calls on_port_down when a port loses its carrier or is set down,
  // on_port_up when it is usable again.
  virtual void poll_links() = 0;
  virtual std::chrono::milliseconds link_poll_interval() const = 0;
  std::function<void(uint8_t port)> on_port_down;
  std::function<void(uint8_t port)> on_port_up;

  // Liveness (kernel engine): the control loop beats every link poll; once the last beat is older
  // than the bound, the fast path hands everything to the kernel. The DPDK engine's workers die
  // with the daemon, so it needs neither.
  virtual void heartbeat() {}
  virtual void set_liveness_bound(uint32_t /*ms*/) {}

  // The box sleeps (suspend): polling threads sleep too until resumed, whatever arrives.
  virtual void set_suspended(bool /*suspended*/) {}

  // The control plane has read a complete conntrack dump and installed what it holds: state a
  // previous run left that this one did not take over can go (kernel engine).
  virtual void resync_complete() {}

  virtual std::size_t port_count() const = 0;
  virtual PortTotals port_totals(std::size_t port) const = 0;
  // The port's kernel interface as the last link poll saw it: administratively up (IFF_UP), and
  // its carrier (DPDK: the device's link). Cheap: no system call.
  struct LinkState {
    bool admin = false, carrier = false;
    bool operator==(const LinkState&) const = default;
  };
  virtual LinkState link_state(std::size_t port) const = 0;
  virtual std::size_t worker_count() const = 0;  // 0: no polling threads
  virtual WorkerTotals worker_totals(std::size_t worker) const = 0;
  ReasonTotals reason_totals() { return fast_path().reasons(); }
  // Free packet buffers in the ports' pool and the exception path's (DPDK only).
  virtual std::optional<std::pair<unsigned, unsigned>> free_mbufs() const { return std::nullopt; }
  // Human-readable counters: ports, workers, reasons.
  virtual void report(std::ostream& out) const = 0;
  // A clean stop leaves the fast path forwarding for the next run instead of handing every flow
  // back to the kernel (kernel engine, kernel_engine.keep_forwarding_on_exit).
  virtual bool keeps_forwarding_on_exit() const { return false; }
};

// The report's "exceptions:" line: every reason that counted something.
inline void print_reasons(std::ostream& out, const ReasonTotals& reasons) {
  out << "exceptions:";
  for (std::size_t r = 0; r < kReasonCount; ++r)
    if (reasons[r]) out << ' ' << name(static_cast<Reason>(r)) << '=' << reasons[r];
  out << '\n';
}

}  // namespace tp
