#include "uplink_health.hpp"

#include <algorithm>
#include <bit>

namespace tp {

std::string to_string(Health h) {
  switch (h) {
    case Health::up:
      return "up";
    case Health::degraded:
      return "degraded";
    case Health::down:
      return "down";
  }
  return "?";
}

double HealthTracker::loss_pct() const {
  int sent = 0, lost = 0;
  for (const Window& w : lost_) {
    sent += w.sent;
    lost += std::popcount(w.bits);
  }
  return sent ? 100.0 * lost / sent : 0.0;
}

HealthTracker::Verdict HealthTracker::judge(const ProbeRound& round) {
  uint32_t answered = 0;
  double rtt_sum = 0;
  for (std::size_t i = 0; i < lost_.size(); ++i) {
    const bool got = i < round.rtt_ms.size() && round.rtt_ms[i].has_value();
    Window& w = lost_[i];
    w.bits = ((w.bits << 1) | (got ? 0u : 1u)) & ((1u << kWindow) - 1);
    w.sent = std::min(w.sent + 1, kWindow);
    if (got) {
      ++answered;
      rtt_sum += *round.rtt_ms[i];
    }
  }
  rtt_ms_ = answered ? std::optional(rtt_sum / answered) : std::nullopt;
  if (answered < cfg_.reliability) return Verdict::failed;
  if (loss_pct() > cfg_.max_loss_pct) return Verdict::unhealthy;
  if (cfg_.max_rtt_ms && *rtt_ms_ > cfg_.max_rtt_ms) return Verdict::unhealthy;
  return Verdict::healthy;
}

std::optional<Health> HealthTracker::move_to(Health next) {
  if (next == state_) return std::nullopt;
  state_ = next;
  failed_run_ = unhealthy_run_ = healthy_run_ = answered_run_ = 0;
  return next;
}

// Runs of rounds, not single rounds, move the state: one lost ping is not an outage, and one
// answer after an outage is not a recovery.
std::optional<Health> HealthTracker::feed(const ProbeRound& round) {
  // The first answer after an outage starts the loss count afresh: the outage's own losses say
  // nothing of the path that came back.
  const bool answered = std::any_of(round.rtt_ms.begin(), round.rtt_ms.end(),
                                    [](const auto& r) { return r.has_value(); });
  if (state_ == Health::down && answered_run_ == 0 && answered)
    for (Window& w : lost_) w = {};
  const Verdict v = judge(round);
  failed_run_ = v == Verdict::failed ? failed_run_ + 1 : 0;
  unhealthy_run_ = v != Verdict::healthy ? unhealthy_run_ + 1 : 0;
  healthy_run_ = v == Verdict::healthy ? healthy_run_ + 1 : 0;
  answered_run_ = v != Verdict::failed ? answered_run_ + 1 : 0;
  switch (state_) {
    case Health::up:
      if (failed_run_ >= cfg_.down) return move_to(Health::down);
      if (unhealthy_run_ >= cfg_.down) return move_to(Health::degraded);
      break;
    case Health::degraded:
      if (failed_run_ >= cfg_.down) return move_to(Health::down);
      if (healthy_run_ >= cfg_.up) return move_to(Health::up);
      break;
    case Health::down:
      if (healthy_run_ >= cfg_.up) return move_to(Health::up);
      if (answered_run_ >= cfg_.up) return move_to(Health::degraded);
      break;
  }
  return std::nullopt;
}

// A link that comes back is up at once when nothing probes it; a probed one stays down until
// `up` rounds in a row answer, as after an outage.
std::optional<Health> HealthTracker::link(bool up) {
  for (Window& w : lost_) w = {};
  rtt_ms_.reset();
  if (!up) return move_to(Health::down);
  if (cfg_.targets.empty()) return move_to(Health::up);
  failed_run_ = unhealthy_run_ = healthy_run_ = answered_run_ = 0;
  return std::nullopt;
}

std::vector<std::size_t> choose_active(const std::vector<UplinkCandidate>& c, SteadyTime now) {
  const auto best = [&](auto&& usable) {
    std::vector<std::size_t> out;
    std::optional<uint32_t> metric;
    for (std::size_t i = 0; i < c.size(); ++i)
      if (usable(c[i]) && (!metric || c[i].metric < *metric)) metric = c[i].metric;
    for (std::size_t i = 0; i < c.size(); ++i)
      if (usable(c[i]) && c[i].metric == *metric) out.push_back(i);
    return out;
  };
  auto ready =
      best([&](const UplinkCandidate& u) { return u.health == Health::up && u.held_until <= now; });
  if (ready.empty())
    ready = best([](const UplinkCandidate& u) { return u.health == Health::degraded; });
  if (ready.empty()) ready = best([](const UplinkCandidate& u) { return u.health == Health::up; });
  return ready;
}

}  // namespace tp
