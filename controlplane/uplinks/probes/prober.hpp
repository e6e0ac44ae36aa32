// The rhythm every uplink prober shares: a round of probes to all targets every interval, closed
// after the timeout and handed to the health tracker with each target's answer time (or none).
// What a probe is (an echo request, an ARP request) is the derived class's.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "asio.hpp"
#include "ip_addr.hpp"
#include "uplink_health.hpp"

namespace tp {

class Prober {
 public:
  using Clock = std::chrono::steady_clock;
  virtual ~Prober();
  Prober(const Prober&) = delete;
  Prober& operator=(const Prober&) = delete;

  uint64_t sent() const { return sent_; }
  uint64_t answered() const { return answered_; }
  // Suspend: no probe and no timer until resume(), which starts a round at once.
  void pause();
  void resume();

 protected:
  Prober(boost::asio::io_context& io, std::string iface, std::vector<IpAddr> targets,
         std::chrono::milliseconds interval, std::chrono::milliseconds timeout,
         std::function<void(const ProbeRound&)> on_round);
  // The derived constructor calls it once its sockets are open.
  void start() { start_round(); }
  // Sends this round's probe to every target; `seq` tells this round's answers from late ones.
  virtual void send_probes(uint16_t seq) = 0;
  // `from` answered this round's probe (a target's second answer counts once; none counts while
  // no round is open).
  void answered_by(const IpAddr& from);

  const std::string iface_;
  const std::vector<IpAddr> targets_;
  uint16_t seq_ = 0;
  uint64_t sent_ = 0;

 private:
  void start_round();
  void finish_round();

  std::chrono::milliseconds interval_, timeout_;
  std::function<void(const ProbeRound&)> on_round_;
  boost::asio::steady_timer round_timer_, timeout_timer_;
  Clock::time_point round_start_;
  ProbeRound round_;
  bool paused_ = false;
  bool round_open_ = false;  // answers between rounds are late: counted for none
  uint64_t answered_ = 0;
};

}  // namespace tp
