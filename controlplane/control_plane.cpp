#include "control_plane.hpp"

#include <algorithm>
#include <iomanip>
#include <iostream>

namespace tp {
namespace {
constexpr auto kLinkPollInterval = std::chrono::milliseconds(100);
}

ControlPlane::ControlPlane(boost::asio::io_context& io, Runtime& rt, const conf::Config& cfg)
    : io_(io), rt_(rt), cfg_(cfg), rtnl_sd_(io), ct_sd_(io), keepalive_timer_(io), link_timer_(io) {
  std::cerr << "tetherpath: " << enable_conntrack_events() << '\n';
  rtnl_ = std::make_unique<RtnlMirror>();
  writer_ = std::make_unique<ConntrackWriter>();
  topo_ = std::make_unique<TopologySync>(rt_.topology());
  flows_ = std::make_unique<FlowManager>(rt_.flows4(), rt_.flows6(), *topo_, *rtnl_,
                                         policy_from(cfg_), writer_.get());
  ConntrackMirror::Sink sink{
      [this](const CtEntry& e) {
        if (offloading_) flows_->upsert(e);
      },
      [this](const CtEntry& e) { flows_->destroyed(e); },
      [this] { flows_->resync_begin(); },
      [this] { flows_->resync_end(); },
  };
  ct_ = std::make_unique<ConntrackMirror>(
      sink, static_cast<int>(cfg_.offload.conntrack_rcvbuf_kb * 1024),
      static_cast<int>(cfg_.offload.conntrack_rcvbuf_max_kb * 1024));
  rtnl_->on_neighbour = [this](int ifindex, const IpAddr& a, std::optional<MacAddr> mac) {
    flows_->neighbour_changed(ifindex, a, mac);
  };
  rtnl_->on_change = [this] {
    // Routes and addresses change in bursts (an interface coming up brings several messages):
    // decide every flow again once the burst has been read.
    if (reevaluate_queued_) return;
    reevaluate_queued_ = true;
    boost::asio::post(io_, [this] {
      reevaluate_queued_ = false;
      flows_->set_config(policy_from(cfg_));  // TAP ifindexes may have changed too
      flows_->flush();
      sync_local_addresses();
    });
  };
  rt_.on_port_down = [this](uint8_t port) { flows_->port_down(port); };
  sync_local_addresses();

  rtnl_sd_.assign(::dup(rtnl_->event_fd()));
  ct_sd_.assign(::dup(ct_->event_fd()));
  watch(rtnl_sd_, [this] {
    rtnl_->on_readable();
    flows_->flush();
  });
  watch(ct_sd_, [this] {
    ct_->on_readable();
    flows_->flush();
  });
  schedule_links();
  if (cfg_.offload.enabled) start_offload();
}

ControlPlane::~ControlPlane() {
  boost::system::error_code ec;
  rtnl_sd_.close(ec);
  ct_sd_.close(ec);
  if (flows_) flows_->release_all();
  rt_.on_port_down = nullptr;
}

void ControlPlane::watch(boost::asio::posix::stream_descriptor& sd,
                         std::function<void()> on_readable) {
  sd.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                [this, &sd, on_readable](const boost::system::error_code& ec) {
                  if (ec) return;
                  on_readable();
                  watch(sd, on_readable);
                });
}

PolicyConfig ControlPlane::policy_from(const conf::Config& cfg) const {
  PolicyConfig p;
  p.tcp = cfg.offload.tcp;
  p.udp = cfg.offload.udp;
  p.icmp = cfg.offload.icmp;
  p.no_offload_mark = cfg.offload.no_offload_mark;
  p.no_offload_mask = cfg.offload.no_offload_mask;
  for (std::size_t i = 0; i < cfg.ports.size(); ++i) {
    const int ifindex = rtnl_->ifindex(cfg.ports[i].name);
    if (ifindex)
      p.ports[ifindex] =
          PortRole{static_cast<uint8_t>(i), cfg.ports[i].role == conf::Role::upstream};
  }
  return p;
}

void ControlPlane::sync_local_addresses() {
  for (std::size_t i = 0; i < cfg_.ports.size(); ++i) {
    const int ifindex = rtnl_->ifindex(cfg_.ports[i].name);
    topo_->set_local_addresses(static_cast<uint8_t>(i),
                               ifindex ? rtnl_->addresses_of(ifindex) : std::vector<IpAddr>{});
  }
}

void ControlPlane::start_offload() {
  if (offloading_) return;
  offloading_ = true;
  // Events first (the socket is already subscribed), then the dump: nothing falls in between.
  ct_->resync();
  flows_->flush();
  schedule_keepalive();
}

void ControlPlane::stop_offload() {
  if (!offloading_) return;
  offloading_ = false;
  keepalive_timer_.cancel();
  flows_->release_all();
}

void ControlPlane::schedule_keepalive() {
  keepalive_timer_.expires_after(std::chrono::seconds(cfg_.offload.keepalive_interval_s));
  keepalive_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || !offloading_) return;
    flows_->keepalive_round(*writer_, ConntrackTimeouts::read_sysctls());
    schedule_keepalive();
  });
}

void ControlPlane::schedule_links() {
  link_timer_.expires_after(kLinkPollInterval);
  link_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    rt_.poll_links();
    schedule_links();
  });
}

void ControlPlane::report(std::ostream& out) const {
  const FlowStats& s = flows_->stats();
  out << "offload: " << (offloading_ ? "on" : "off") << ", " << flows_->size() << " flows, "
      << flows_->pending() << " waiting for a neighbour; installed " << s.installed << ", removed "
      << s.removed << ", install failed " << s.install_failed << ", handed back " << s.handed_back
      << '\n';
  out << "conntrack: " << ct_->events << " events, " << ct_->overruns << " overruns, "
      << ct_->resyncs << " resyncs, rcvbuf " << ct_->rcvbuf_bytes() << "; keepalive rounds "
      << s.keepalive_rounds << ", refreshed " << s.keepalives << ", gone " << s.keepalive_gone
      << '\n';
  out << "not offloaded:";
  for (const auto& [reason, n] : s.refused) out << ' ' << reason << '=' << n;
  out << '\n';
  // The most recently active flows first: what an operator (or a test) looks for among thousands.
  std::vector<FlowView> views;
  flows_->for_each([&](const FlowView& f) { views.push_back(f); });
  const std::size_t shown = std::min<std::size_t>(views.size(), 50);
  std::partial_sort(views.begin(), views.begin() + static_cast<long>(shown), views.end(),
                    [](const FlowView& a, const FlowView& b) { return a.last_seen > b.last_seen; });
  for (std::size_t i = 0; i < shown; ++i) {
    const FlowView& f = views[i];
    const CtEntry& e = *f.ct;
    out << "flow proto " << int(e.proto) << ' ' << e.orig.src.str() << ':' << ntohs(e.orig.sport)
        << " -> " << e.orig.dst.str() << ':' << ntohs(e.orig.dport) << " orig " << f.orig_packets
        << " pkts " << f.orig_bytes << " bytes, reply " << f.reply_packets << " pkts "
        << f.reply_bytes << " bytes\n";
  }
}

}  // namespace tp
