#include "kernel_runtime.hpp"

#include "daemon_log.hpp"
#include "link_type.hpp"
#include "xdp_features.hpp"

#include <net/if.h>
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

int read_int(const std::string& path, int fallback) {
  std::ifstream in(path);
  int v = fallback;
  return in >> v ? v : fallback;
}

const char* hook_name(BpfFastPath::Hook h, bool rawip) {
  if (h == BpfFastPath::Hook::xdp) return "xdp";
  return rawip ? "tc-rawip" : "tc";
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
    opts.pin_dir = BpfFastPath::pin_dir_for(cfg_.kernel_engine.bpffs);
    bpf_ = BpfFastPath::create(opts, error);
    if (!bpf_) throw RuntimeError("kernel engine: " + error);
    // A previous run's bound is in force: beat at once, so its flows go on forwarding.
    bpf_->heartbeat();
    if (bpf_->reused())
      log::notice() << "took over the kernel engine's state in " << opts.pin_dir << " ("
                    << bpf_->inherited()
                    << " flow directions and rules; they forward on until the conntrack dump "
                       "confirms or drops them)";
    std::array<EtherAddr, kMaxPorts> macs{};
    for (std::size_t i = 0; i < cfg_.ports.size(); ++i) {
      PortState ps;
      ps.cfg = cfg_.ports[i];
      if (!probe(ps, true, &macs[i], error))
        throw RuntimeError("port " + ps.cfg.name + ": " + error);
      const int rc = bpf_->set_port_device(static_cast<uint8_t>(i), ps.ifindex, ps.rawip);
      if (rc < 0)
        throw RuntimeError("port " + ps.cfg.name +
                           ": cannot register its device: " + std::strerror(-rc));
      ports_.push_back(ps);
    }
    // Every device is known before the first attach: an XDP port redirects only to ports whose
    // devices are registered as redirect targets.
    all_xdp_targets_ = std::all_of(ports_.begin(), ports_.end(), [](const PortState& ps) {
      std::string why;
      return !ps.rawip && xdp_redirect_target(ps.ifindex, why) == XdpTarget::yes;
    });
    for (std::size_t i = 0; i < ports_.size(); ++i) attach(static_cast<uint8_t>(i));
    bpf_->update_topology([&](Topology& t) {
      for (std::size_t i = 0; i < ports_.size(); ++i) t.ports[i].mac = macs[i];
    });
    publish_ports();
    // A previous layout's state (an upgrade that changed the maps) forwards until our programs
    // replaced its on every port; what it carried is installed again from conntrack.
    for (const std::string& dir : BpfFastPath::stale_pin_dirs(cfg_.kernel_engine.bpffs)) {
      const int rc = BpfFastPath::remove_pin_dir(dir);
      log::notice() << "removed " << dir << " (another map layout)"
                    << (rc ? std::string(": ") + std::strerror(-rc) : std::string());
    }
  } catch (...) {
    if (bpf_ && !cfg_.kernel_engine.keep_forwarding_on_exit) {
      bpf_->detach_all();
      bpf_->unpin();
    }
    ::close(ioctl_fd_);
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
  if (keeps_forwarding_on_exit()) {
    bpf_->keep_as_is();
    log::notice() << "the kernel engine keeps forwarding (kernel_engine.keep_forwarding_on_exit) "
                     "until its heartbeat goes stale or the next run takes over "
                  << bpf_->pin_dir();
    return;
  }
  bpf_->detach_all();
  bpf_->unpin();
}

void KernelRuntime::resync_complete() {
  if (const std::size_t n = bpf_->drop_inherited())
    log::info() << "dropped " << n
                << " flow directions or rules of the previous run that conntrack no longer has";
}

bool KernelRuntime::probe(PortState& ps, bool full, EtherAddr* mac, std::string& error) const {
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, ps.cfg.name.c_str(), IFNAMSIZ - 1);
  if (::ioctl(ioctl_fd_, SIOCGIFINDEX, &ifr) != 0) {
    error = "the kernel has no interface " + ps.cfg.name +
            " (a kernel-engine port attaches to an existing interface)";
    return false;
  }
  const bool same_device = ps.ifindex == ifr.ifr_ifindex;
  ps.ifindex = ifr.ifr_ifindex;
  if (::ioctl(ioctl_fd_, SIOCGIFFLAGS, &ifr) == 0) {
    ps.admin_up = ifr.ifr_flags & IFF_UP;
    ps.carrier = ifr.ifr_flags & IFF_RUNNING;
  }
  if (::ioctl(ioctl_fd_, SIOCGIFMTU, &ifr) == 0) ps.mtu = static_cast<uint16_t>(ifr.ifr_mtu);
  if (!full && same_device) {
    ps.mtu6 = std::min(ps.mtu6, ps.mtu);
    return true;
  }
  if (::ioctl(ioctl_fd_, SIOCGIFHWADDR, &ifr) != 0) {
    error = std::string("cannot read its link type: ") + std::strerror(errno);
    return false;
  }
  const int type = ifr.ifr_hwaddr.sa_family;
  ps.rawip = is_rawip_link(type);
  if (type != ARPHRD_ETHER && !ps.rawip) {
    error = "link type " + std::to_string(type) +
            " is neither Ethernet nor raw IP; the kernel engine cannot forward on it";
    return false;
  }
  if (mac && !ps.rawip) std::memcpy(mac->addr_bytes, ifr.ifr_hwaddr.sa_data, 6);
  // The IPv6 MTU a router advertised, if lower.
  const int mtu6 = read_int("/proc/sys/net/ipv6/conf/" + ps.cfg.name + "/mtu", ps.mtu);
  ps.mtu6 = static_cast<uint16_t>(std::min<int>(mtu6, ps.mtu));
  return true;
}

void KernelRuntime::attach(uint8_t port) {
  const PortState& ps = ports_[port];
  using H = BpfFastPath::Hook;
  // auto: XDP where every port takes XDP redirects. A port whose flows leave by a device that
  // does not (a raw-IP modem, a veth without NAPI) would hand them all to the kernel
  // (xdp_egress); tc redirects to any device.
  H hook = H::tc;
  if (ps.cfg.hook == conf::Hook::xdp || (ps.cfg.hook == conf::Hook::automatic && all_xdp_targets_))
    hook = H::xdp;
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
  // An upstream's data limit counts what the kernel sends out of it too (the kernel path's
  // uploads), which only a tc egress program sees.
  if (ps.cfg.role == conf::Role::upstream && !bpf_->attach_egress(port, error))
    throw RuntimeError("port " + ps.cfg.name + ": cannot attach the egress counter: " + error);
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
  // Flags and MTU are three ioctls a port; the rest only every tenth poll: an idle box should cost
  // next to nothing.
  const bool full = polls_++ % 10 == 0;
  bool changed = false;
  for (std::size_t i = 0; i < ports_.size(); ++i) {
    PortState& ps = ports_[i];
    PortState now = ps;
    std::string error;
    EtherAddr mac{};
    const bool exists = probe(now, full, &mac, error);
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
          log::err() << e.what();
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
    t.attachment.mode = bpf_->attach_mode(port);
    t.attachment.program_id = bpf_->prog_id(port);
  } else {
    t.attachment.hook = "none";
  }
  t.attachment.note = bpf_->attach_note(port);
  if (ps.cfg.hook == conf::Hook::automatic && !all_xdp_targets_ && !ps.rawip)
    t.attachment.note += "; hook auto chose tc: not every port takes XDP redirects";
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
  print_reasons(out, bpf_->reasons());
}

}  // namespace tp
