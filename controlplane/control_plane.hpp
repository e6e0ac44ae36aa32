// The control thread's services on one Boost.Asio loop: the rtnetlink and conntrack mirrors, the
// flow manager, NAT keepalives and link-state polling. Everything here runs on that one thread,
// so nothing in it needs a lock; the dataplane sees only what the runtime publishes.
#pragma once

#include <memory>
#include <ostream>
#include "asio.hpp"

#include "config.hpp"
#include "conntrack_mirror.hpp"
#include "conntrack_writer.hpp"
#include "flow_manager.hpp"
#include "rtnl_mirror.hpp"
#include "runtime.hpp"
#include "topology_sync.hpp"

namespace tp {

class ControlPlane {
 public:
  ControlPlane(boost::asio::io_context& io, Runtime& rt, const conf::Config& cfg);  // throws
  ~ControlPlane();

  // Offload on: dump conntrack and follow it. Off: every flow goes back to the kernel.
  void start_offload();
  void stop_offload();
  bool offloading() const { return offloading_; }

  void report(std::ostream& out) const;
  FlowManager& flows() { return *flows_; }
  const ConntrackMirror& conntrack() const { return *ct_; }

 private:
  void watch(boost::asio::posix::stream_descriptor& sd, std::function<void()> on_readable);
  void schedule_keepalive();
  void schedule_links();
  PolicyConfig policy_from(const conf::Config& cfg) const;
  void sync_local_addresses();

  boost::asio::io_context& io_;
  Runtime& rt_;
  conf::Config cfg_;
  std::unique_ptr<RtnlMirror> rtnl_;
  std::unique_ptr<ConntrackWriter> writer_;
  std::unique_ptr<TopologySync> topo_;
  std::unique_ptr<FlowManager> flows_;
  std::unique_ptr<ConntrackMirror> ct_;
  boost::asio::posix::stream_descriptor rtnl_sd_;
  boost::asio::posix::stream_descriptor ct_sd_;
  boost::asio::steady_timer keepalive_timer_;
  boost::asio::steady_timer link_timer_;
  bool offloading_ = false;
  bool reevaluate_queued_ = false;
};

}  // namespace tp
