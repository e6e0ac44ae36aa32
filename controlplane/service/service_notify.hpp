// The daemon's side of systemd's notify protocol (Type=notify), through libsystemd's sd_notify:
// READY=1 once the ports forward and the API answers, STATUS= lines, STOPPING=1 when a stop
// begins, and WATCHDOG=1 from the control loop at half the service's WatchdogSec. Without a
// service manager (NOTIFY_SOCKET unset: a terminal, the lab) every call does nothing.
#pragma once

#include <chrono>
#include <string>

#include "asio.hpp"

namespace tp {

class ServiceNotify {
 public:
  explicit ServiceNotify(boost::asio::io_context& io);

  // The ports forward: READY=1 with a status line, and the watchdog's pings begin (systemd
  // arms the watchdog once start-up is complete).
  void ready(const std::string& status);
  void status(const std::string& status);
  void stopping(const std::string& status);

  // The keep-alive period: half of WATCHDOG_USEC, or zero when no watchdog is asked for.
  std::chrono::microseconds watchdog_period() const { return period_; }

 private:
  void ping();

  boost::asio::steady_timer timer_;
  std::chrono::microseconds period_{0};
  bool stopping_ = false;
};

}  // namespace tp
