#include "service_notify.hpp"

#include <systemd/sd-daemon.h>

#include "daemon_log.hpp"

namespace tp {

namespace {

void notify(const std::string& state) {
  // A failure to reach the manager must not stop the daemon; systemd times the start or the
  // watchdog out if it matters.
  const int rc = sd_notify(0, state.c_str());
  if (rc < 0) log::warning() << "service manager not notified (" << state << "): error " << -rc;
}

}  // namespace

ServiceNotify::ServiceNotify(boost::asio::io_context& io) : timer_(io) {
  uint64_t usec = 0;
  // > 0 only when WATCHDOG_USEC is set for this very process (WATCHDOG_PID).
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) period_ = std::chrono::microseconds(usec / 2);
}

void ServiceNotify::ready(const std::string& status) {
  notify("READY=1\nSTATUS=" + status);
  if (period_.count() > 0) ping();
}

void ServiceNotify::status(const std::string& status) { notify("STATUS=" + status); }

void ServiceNotify::stopping(const std::string& status) {
  stopping_ = true;
  timer_.cancel();
  notify("STOPPING=1\nSTATUS=" + status);
}

void ServiceNotify::ping() {
  // From the control loop's own timer: a loop stuck in a handler stops the pings, and systemd
  // restarts the daemon (Restart=on-failure) while the kernel carries the flows.
  notify("WATCHDOG=1");
  timer_.expires_after(period_);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec && !stopping_) ping();
  });
}

}  // namespace tp
