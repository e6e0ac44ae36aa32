// Data limits as workers and the control thread share them, without locks: a limit blocks from
// the burst after its crossing, and nothing a worker does concurrently can leave a port blocked
// once the control thread has disarmed it or re-armed it below its limit. Also built as its own
// executable under ThreadSanitizer (tests/meson.build: tsan_tests).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "data_limits.hpp"

namespace tp {
namespace {

TEST(DataLimits, BlockedFollowsTheState) {
  DataLimits l;
  l.charge(0, 100);  // not armed: not counted
  EXPECT_EQ(l.used(0), 0u);
  l.arm(0, 1000, 0);
  l.charge(0, 999);
  EXPECT_FALSE(l.is_blocked(0));
  l.charge(0, 1);
  EXPECT_TRUE(l.is_blocked(0));
  EXPECT_EQ(l.blocked(), 1u);
  l.arm(0, 5000, 1000);  // a new limit, the bytes used so far carried over
  EXPECT_FALSE(l.is_blocked(0));
  l.arm(3, 10, 10);  // already reached: blocked at once
  EXPECT_EQ(l.blocked(), 1u << 3);
  l.disarm(3);
  EXPECT_EQ(l.blocked(), 0u);
}

// Workers charge a limited port without pause while the control thread keeps reaching the limit,
// disarming and re-arming it. Whatever interleaving happened, after the last disarm (and after a
// re-arm with room left) the port is not blocked. With a stored "blocked" bit raised by workers,
// a worker that read `armed` before the disarm raised it afterwards and the port stayed blocked.
TEST(DataLimits, NoWorkerCanLeaveAPortBlockedAfterDisarmOrRearm) {
  DataLimits l;
  constexpr uint8_t kPort = 2;
  std::atomic<bool> stop{false};
  std::vector<std::thread> workers;
  for (int w = 0; w < 3; ++w)
    workers.emplace_back([&] {
      uint32_t seen = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        seen |= l.blocked();  // what an engine reads per burst
        l.charge(kPort, 1500);
      }
      (void)seen;
    });
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
  int rounds = 0, rearmed_blocked = 0;
  while (std::chrono::steady_clock::now() < until) {
    l.arm(kPort, 3000, 0);  // reached within a couple of charges
    while (!l.is_blocked(kPort) && std::chrono::steady_clock::now() < until) {
    }
    l.disarm(kPort);
    if (l.is_blocked(kPort)) ++rearmed_blocked;
    l.arm(kPort, UINT64_MAX, 0);  // room left: must not be blocked
    if (l.is_blocked(kPort)) ++rearmed_blocked;
    l.disarm(kPort);
    ++rounds;
  }
  stop = true;
  for (auto& t : workers) t.join();
  EXPECT_GT(rounds, 10);
  EXPECT_EQ(rearmed_blocked, 0);
  EXPECT_FALSE(l.is_blocked(kPort));
  EXPECT_EQ(l.blocked(), 0u);
}

}  // namespace
}  // namespace tp
