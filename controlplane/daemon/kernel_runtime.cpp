#include "kernel_runtime.hpp"

#include <bpf/libbpf.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iomanip>

namespace tp {
namespace {

// Link types whose frames start at the IP header (rmnet, WireGuard, tun, IPIP and SIT tunnels).
bool is_rawip(int arphrd) {
  switch (arphrd) {
    case ARPHRD_NONE:
    case ARPHRD_RAWIP:
    case ARPHRD_TUNNEL:
    case ARPHRD_TUNNEL6:
    case ARPHRD_SIT:
      return true;
    default:
      return false;
  }
}

int read_int(const std::string& path, int fallback) {
  std::ifstream in(path);
  int v = fallback;
  return in >> v ? v : fallback;
}

const char* hook_name(BpfFastPath::Hook h, bool rawip) {
  if (h == BpfFastPath::Hook::xdp) return "xdp";
  return rawip ? "tc-rawip" : "tc";
}

// The id of the program the kernel runs on the port's hook: the kernel's view, not ours.
uint32_t attached_program_id(int ifindex, BpfFastPath::Hook hook) {
  if (hook == BpfFastPath::Hook::xdp) {
    uint32_t id = 0;
    return bpf_xdp_query_id(ifindex, 0, &id) == 0 ? id : 0;
  }
  bpf_tc_hook h{};
  h.sz = sizeof(h);
  h.ifindex = ifindex;
  h.attach_point = BPF_TC_INGRESS;
  bpf_tc_opts o{};
  o.sz = sizeof(o);
  o.handle = BpfFastPath::kTcHandle;
  o.priority = BpfFastPath::kTcPriority;
  return bpf_tc_query(&h, &o) == 0 ? o.prog_id : 0;
}

}  // namespace

KernelRuntime::KernelRuntime(const conf::Config& cfg) : cfg_(cfg) {
  ioctl_fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (ioctl_fd_ < 0) throw RuntimeError(std::string("socket: ") + std::strerror(errno));
  try {
    std::string error;
    BpfOptions opts;
    opts.flow_capacity = cfg_.dataplane.flow_capacity * 2;  // two directions per flow
    opts.rule_capacity = kIpv6RuleCapacity;
    bpf_ = BpfFastPath::create(opts, error);
    if (!bpf_) throw RuntimeError("kernel engine: " + error);
    std::array<EtherAddr, kMaxPorts> macs{};
    for (std::size_t i = 0; i < cfg_.ports.size(); ++i) {
      PortState ps;
      ps.cfg = cfg_.ports[i];
      if (!probe(ps, &macs[i], error)) throw RuntimeError("port " + ps.cfg.name + ": " + error);
      const int rc = bpf_->set_port_device(static_cast<uint8_t>(i), ps.ifindex, ps.rawip);
      if (rc < 0)
        throw RuntimeError("port " + ps.cfg.name +
                           ": cannot register its device: " + std::strerror(-rc));
      ports_.push_back(ps);
    }
    // Every device is known before the first attach: an XDP port redirects only to ports whose
    // devices are registered as redirect targets.
    for (std::size_t i = 0; i < ports_.size(); ++i) attach(static_cast<uint8_t>(i));
    bpf_->update_topology([&](Topology& t) {
      for (std::size_t i = 0; i < ports_.size(); ++i) t.ports[i].mac = macs[i];
    });
    publish_ports();
  } catch (...) {
    ::close(ioctl_fd_);  // bpf_ goes with the half-built object and detaches what it attached
    throw;
  }
}

KernelRuntime::~KernelRuntime() {
  stop();
  ::close(ioctl_fd_);
}

void KernelRuntime::stop() {
  if (stopped_ || !bpf_) return;
  stopped_ = true;
  if (cfg_.kernel_engine.keep_forwarding_on_exit) return;
  for (std::size_t i = 0; i < ports_.size(); ++i) bpf_->detach(static_cast<uint8_t>(i));
}

bool KernelRuntime::probe(PortState& ps, EtherAddr* mac, std::string& error) const {
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, ps.cfg.name.c_str(), IFNAMSIZ - 1);
  if (::ioctl(ioctl_fd_, SIOCGIFINDEX, &ifr) != 0) {
    error = "the kernel has no interface " + ps.cfg.name +
            " (a kernel-engine port attaches to an existing interface)";
    return false;
  }
  ps.ifindex = ifr.ifr_ifindex;
  if (::ioctl(ioctl_fd_, SIOCGIFHWADDR, &ifr) != 0) {
    error = std::string("cannot read its link type: ") + std::strerror(errno);
    return false;
  }
  const int type = ifr.ifr_hwaddr.sa_family;
  ps.rawip = is_rawip(type);
  if (type != ARPHRD_ETHER && !ps.rawip) {
    error = "link type " + std::to_string(type) +
            " is neither Ethernet nor raw IP; the kernel engine cannot forward on it";
    return false;
  }
  if (mac && !ps.rawip) std::memcpy(mac->addr_bytes, ifr.ifr_hwaddr.sa_data, 6);
  if (::ioctl(ioctl_fd_, SIOCGIFFLAGS, &ifr) == 0) {
    ps.admin_up = ifr.ifr_flags & IFF_UP;
    ps.carrier = ifr.ifr_flags & IFF_RUNNING;
  }
  if (::ioctl(ioctl_fd_, SIOCGIFMTU, &ifr) == 0) ps.mtu = static_cast<uint16_t>(ifr.ifr_mtu);
  // The IPv6 MTU a router advertised, if lower: read from procfs, rarely (see poll_links).
  const int mtu6 = read_int("/proc/sys/net/ipv6/conf/" + ps.cfg.name + "/mtu", ps.mtu);
  ps.mtu6 = static_cast<uint16_t>(std::min<int>(mtu6, ps.mtu));
  return true;
}

void KernelRuntime::attach(uint8_t port) {
  const PortState& ps = ports_[port];
  using H = BpfFastPath::Hook;
  H hook = H::tc;
  if (ps.cfg.hook == conf::Hook::xdp || ps.cfg.hook == conf::Hook::automatic) hook = H::xdp;
  if (ps.rawip) {
    if (ps.cfg.hook == conf::Hook::xdp)
      throw RuntimeError("port " + ps.cfg.name +
                         ": hook xdp asked, but it is a raw-IP device (no Ethernet header): "
                         "native XDP cannot run there; use hook tc or auto");
    hook = H::tc_rawip;
  }
  std::string error;
  if (!bpf_->attach(port, hook, error))
    throw RuntimeError("port " + ps.cfg.name + ": cannot attach: " + error);
  if (ps.cfg.hook == conf::Hook::xdp && bpf_->attached_hook(port) != H::xdp)
    throw RuntimeError("port " + ps.cfg.name + ": hook xdp asked, but " + bpf_->attach_note(port) +
                       " (hook auto accepts tc there)");
}

void KernelRuntime::publish_ports() {
  bpf_->update_topology([&](Topology& t) {
    for (std::size_t i = 0; i < ports_.size(); ++i) {
      const PortState& ps = ports_[i];
      t.ports[i].enabled = ps.admin_up && ps.ifindex;
      t.ports[i].mtu = ps.mtu;
      t.ports[i].mtu6 = ps.mtu6;
    }
  });
}

void KernelRuntime::poll_links() {
  if (stopped_) return;
  // Flags and MTU are two ioctls a port; the IPv6 MTU (procfs) only every tenth poll: an idle box
  // should cost next to nothing.
  const bool read_mtu6 = polls_++ % 10 == 0;
  bool changed = false;
  for (std::size_t i = 0; i < ports_.size(); ++i) {
    PortState& ps = ports_[i];
    PortState now = ps;
    std::string error;
    EtherAddr mac{};
    const bool exists = probe(now, &mac, error);
    if (!read_mtu6) now.mtu6 = std::min(ps.mtu6, now.mtu);
    if (!exists) {
      now.ifindex = 0;
      now.admin_up = now.carrier = false;
    } else if (now.ifindex != ps.ifindex) {
      // The interface was recreated: a new device, perhaps a new MAC; the old attachment went
      // with the old device.
      const auto port = static_cast<uint8_t>(i);
      bpf_->detach(port);
      if (bpf_->set_port_device(port, now.ifindex, now.rawip) == 0) {
        ps.ifindex = now.ifindex;
        ps.rawip = now.rawip;
        try {
          attach(port);
        } catch (const RuntimeError& e) {
          std::fprintf(stderr, "tetherpath: %s\n", e.what());
        }
        bpf_->update_topology([&](Topology& t) { t.ports[port].mac = mac; });
      }
    }
    if (now.ifindex != ps.ifindex || now.admin_up != ps.admin_up || now.mtu != ps.mtu ||
        now.mtu6 != ps.mtu6)
      changed = true;
    ps.ifindex = now.ifindex;
    ps.admin_up = now.admin_up;
    ps.carrier = now.carrier;
    ps.mtu = now.mtu;
    ps.mtu6 = now.mtu6;
  }
  if (changed) publish_ports();
  for (std::size_t i = 0; i < ports_.size(); ++i) {
    PortState& ps = ports_[i];
    const bool usable = ps.ifindex && ps.admin_up && ps.carrier;
    if (usable == ps.usable) continue;
    ps.usable = usable;
    const auto port = static_cast<uint8_t>(i);
    if (usable && on_port_up) on_port_up(port);
    if (!usable && on_port_down) on_port_down(port);
  }
}

PortTotals KernelRuntime::port_totals(std::size_t i) const {
  PortTotals t;
  static_cast<PortCounts&>(t) = bpf_->port_counts(static_cast<uint8_t>(i));
  const PortState& ps = ports_[i];
  t.name = ps.cfg.name;
  t.link = !ps.ifindex ? "absent" : !ps.admin_up ? "down" : ps.carrier ? "up" : "no-carrier";
  t.attachment.engine = "kernel";
  const auto port = static_cast<uint8_t>(i);
  if (const auto hook = bpf_->attached_hook(port)) {
    t.attachment.hook = hook_name(*hook, ps.rawip);
    t.attachment.mode = *hook == BpfFastPath::Hook::xdp ? "native" : "clsact ingress";
    t.attachment.program_id = attached_program_id(ps.ifindex, *hook);
  } else {
    t.attachment.hook = "none";
  }
  t.attachment.note = bpf_->attach_note(port);
  return t;
}

void KernelRuntime::report(std::ostream& out) const {
  out << std::left << std::setw(10) << "port" << std::right << std::setw(12) << "rx"
      << std::setw(12) << "fast rx" << std::setw(12) << "fast tx" << std::setw(12) << "punted"
      << std::setw(12) << "dropped" << std::setw(10) << "hook" << std::setw(10) << "prog"
      << std::setw(12) << "link" << '\n';
  for (std::size_t i = 0; i < ports_.size(); ++i) {
    const PortTotals t = port_totals(i);
    out << std::left << std::setw(10) << t.name << std::right << std::setw(12) << t.rx_packets
        << std::setw(12) << t.fwd_rx_packets << std::setw(12) << t.fwd_tx_packets << std::setw(12)
        << t.punted << std::setw(12) << t.dropped << std::setw(10) << t.attachment.hook
        << std::setw(10) << t.attachment.program_id << std::setw(12) << t.link << '\n';
  }
  out << "exceptions:";
  const auto reasons = bpf_->reasons();
  for (std::size_t r = 0; r < kReasonCount; ++r)
    if (reasons[r]) out << ' ' << name(static_cast<Reason>(r)) << '=' << reasons[r];
  out << '\n';
}

}  // namespace tp
