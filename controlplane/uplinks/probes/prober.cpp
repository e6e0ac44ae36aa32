#include "prober.hpp"

namespace tp {

Prober::Prober(boost::asio::io_context& io, std::string iface, std::vector<IpAddr> targets,
               std::chrono::milliseconds interval, std::chrono::milliseconds timeout,
               std::function<void(const ProbeRound&)> on_round)
    : iface_(std::move(iface)),
      targets_(std::move(targets)),
      interval_(interval),
      timeout_(timeout),
      on_round_(std::move(on_round)),
      round_timer_(io),
      timeout_timer_(io) {}

Prober::~Prober() {
  round_timer_.cancel();
  timeout_timer_.cancel();
}

void Prober::start_round() {
  round_start_ = Clock::now();
  ++seq_;
  round_.rtt_ms.assign(targets_.size(), std::nullopt);
  round_open_ = true;
  send_probes(seq_);
  timeout_timer_.expires_after(timeout_);
  timeout_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec && !paused_) finish_round();
  });
}

void Prober::finish_round() {
  round_open_ = false;
  on_round_(round_);
  const auto next = round_start_ + interval_;
  round_timer_.expires_at(next);
  round_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec && !paused_) start_round();
  });
}

void Prober::pause() {
  paused_ = true;
  round_open_ = false;
  round_timer_.cancel();
  timeout_timer_.cancel();
}

void Prober::resume() {
  if (!paused_) return;
  paused_ = false;
  start_round();
}

void Prober::answered_by(const IpAddr& from) {
  if (!round_open_) return;
  for (std::size_t i = 0; i < targets_.size(); ++i)
    if (targets_[i] == from && !round_.rtt_ms[i]) {
      round_.rtt_ms[i] =
          std::chrono::duration<double, std::milli>(Clock::now() - round_start_).count();
      ++answered_;
    }
}

}  // namespace tp
