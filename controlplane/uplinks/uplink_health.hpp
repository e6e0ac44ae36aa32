// An uplink's health from its probe rounds (mwan3track's counting): pure logic, fed one round at a
// time, so every transition is testable without a network. The prober (icmp_prober) makes the
// rounds; the monitor (uplink_monitor) acts on the states.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config.hpp"

namespace tp {

// up: takes new connections. degraded: answers, but loses or lags beyond the bounds; new
// connections prefer healthy uplinks, running flows stay. down: no answers (or no link); its
// flows fail over.
enum class Health { up, degraded, down };
std::string to_string(Health h);

// One round: per target, whether it answered and in how long.
struct ProbeRound {
  std::vector<std::optional<double>> rtt_ms;  // one per target; empty optional: no answer
};

class HealthTracker {
 public:
  explicit HealthTracker(const conf::TrackConfig& cfg) : cfg_(cfg), lost_(cfg.targets.size()) {}

  // The new state if this round changes it.
  std::optional<Health> feed(const ProbeRound& round);
  // The link went (down at once) or came back (up, probing decides from there on).
  std::optional<Health> link(bool up);

  Health state() const { return state_; }
  // Over the last ten probes of every target.
  double loss_pct() const;
  std::optional<double> last_rtt_ms() const { return rtt_ms_; }

 private:
  enum class Verdict { healthy, unhealthy, failed };
  Verdict judge(const ProbeRound& round);
  std::optional<Health> move_to(Health next);

  static constexpr int kWindow = 10;
  conf::TrackConfig cfg_;
  Health state_ = Health::up;  // until shown otherwise: a fresh uplink is not kept from service
  // Per target, the last kWindow probes as bits (1 = lost), and how many of them were sent.
  struct Window {
    uint32_t bits = 0;
    int sent = 0;
  };
  std::vector<Window> lost_;
  std::optional<double> rtt_ms_;
  uint32_t failed_run_ = 0, unhealthy_run_ = 0, healthy_run_ = 0, answered_run_ = 0;
};

using SteadyTime = std::chrono::steady_clock::time_point;

// What choosing needs to know of one uplink.
struct UplinkCandidate {
  uint32_t metric = 0;
  Health health = Health::up;
  SteadyTime held_until{};  // back from an outage: not before then, unless nothing else is there
};

// Which uplinks take new connections: the healthy ones of the lowest metric whose failback hold
// is over; failing those, the degraded ones of the lowest metric; failing those, healthy ones
// still held. Down uplinks never. Indexes into `c`, in order.
std::vector<std::size_t> choose_active(const std::vector<UplinkCandidate>& c, SteadyTime now);

}  // namespace tp
