// The daemon's end of systemd's notify protocol and its log lines, against a real datagram socket
// standing in for the service manager.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include "asio.hpp"
#include "daemon_log.hpp"
#include "service_notify.hpp"

namespace tp {
namespace {

// A bound NOTIFY_SOCKET for the duration of a test; the environment is restored after.
class ManagerSocket {
 public:
  ManagerSocket() {
    path_ = "/tmp/tp-notify-test-" + std::to_string(getpid()) + ".sock";
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    path_.copy(a.sun_path, sizeof a.sun_path - 1);
    unlink(path_.c_str());
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    timeval tv{0, 200 * 1000};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setenv("NOTIFY_SOCKET", path_.c_str(), 1);
  }
  ~ManagerSocket() {
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    close(fd_);
    unlink(path_.c_str());
  }
  // The messages received until none arrives for 200 ms.
  std::vector<std::string> received() {
    std::vector<std::string> out;
    char buf[4096];
    for (ssize_t n; (n = recv(fd_, buf, sizeof buf, 0)) > 0;) out.emplace_back(buf, n);
    return out;
  }

 private:
  std::string path_;
  int fd_ = -1;
};

TEST(ServiceNotify, ReadyStatusAndStoppingReachTheManager) {
  ManagerSocket manager;
  boost::asio::io_context io;
  ServiceNotify service(io);
  EXPECT_EQ(service.watchdog_period().count(), 0);  // no WATCHDOG_USEC: no pings
  service.ready("forwarding on 3 ports");
  service.stopping("stopping");
  io.run_for(std::chrono::milliseconds(50));
  EXPECT_EQ(manager.received(), (std::vector<std::string>{"READY=1\nSTATUS=forwarding on 3 ports",
                                                          "STOPPING=1\nSTATUS=stopping"}));
}

TEST(ServiceNotify, PingsAtHalfTheWatchdogPeriodUntilStopping) {
  ManagerSocket manager;
  setenv("WATCHDOG_USEC", "100000", 1);  // 100 ms: a ping every 50 ms
  boost::asio::io_context io;
  ServiceNotify service(io);
  EXPECT_EQ(service.watchdog_period(), std::chrono::microseconds(50000));
  service.ready("up");
  io.run_for(std::chrono::milliseconds(230));  // pings at 0, 50, 100, 150, 200 ms
  service.stopping("down");
  io.run_for(std::chrono::milliseconds(120));  // none after the stop
  const auto got = manager.received();
  ASSERT_GE(got.size(), 3u);
  EXPECT_EQ(got.front(), "READY=1\nSTATUS=up");
  EXPECT_EQ(got.back(), "STOPPING=1\nSTATUS=down");
  const auto pings = static_cast<long>(got.size()) - 2;
  for (std::size_t i = 1; i + 1 < got.size(); ++i) EXPECT_EQ(got[i], "WATCHDOG=1");
  EXPECT_GE(pings, 3);  // a loaded machine may run late, never ahead
  EXPECT_LE(pings, 5);
}

TEST(ServiceNotify, WithoutAManagerNothingHappens) {
  unsetenv("NOTIFY_SOCKET");
  boost::asio::io_context io;
  ServiceNotify service(io);
  testing::internal::CaptureStderr();
  service.ready("up");  // no socket to send to: a no-op, not an error worth a log line
  service.stopping("down");
  io.run_for(std::chrono::milliseconds(20));
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
  EXPECT_EQ(service.watchdog_period().count(), 0);
}

TEST(DaemonLog, TheJournalGetsThePriorityPrefix) {
  EXPECT_EQ(log::format(log::Priority::err, "reload refused", true),
            "<3>tetherpath: reload refused\n");
  EXPECT_EQ(log::format(log::Priority::info, "event {}", true), "<6>tetherpath: event {}\n");
  EXPECT_EQ(log::format(log::Priority::notice, "running", false), "tetherpath: running\n");
}

}  // namespace
}  // namespace tp
