// The doorbell's sleep ends on a ring, on any watched descriptor, or at the timeout.
#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <thread>
#include <vector>

#include "doorbell.hpp"

namespace tp {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint32_t kLongUs = 5'000'000;

struct Pipes {
  explicit Pipes(int n) {
    for (int i = 0; i < n; ++i) {
      int p[2];
      EXPECT_EQ(pipe(p), 0);
      read_ends.push_back(p[0]);
      write_ends.push_back(p[1]);
    }
  }
  ~Pipes() {
    for (int fd : read_ends) close(fd);
    for (int fd : write_ends) close(fd);
  }
  std::vector<int> read_ends, write_ends;
};

// Sleeps as a worker would: announce, then wait. How long it slept.
Clock::duration sleep_on(Doorbell& d, uint32_t timeout_us) {
  const auto t0 = Clock::now();
  d.announce();
  d.wait(timeout_us);
  return Clock::now() - t0;
}

// A worker with many RX queues (ports x queues) or the exception path with many TAPs: whichever
// descriptor has data ends the sleep, the last one as well as the first.
TEST(Doorbell, EveryWatchedDescriptorWakes) {
  Pipes pipes(40);
  Doorbell d;
  d.watch(pipes.read_ends);
  for (int i : {0, 15, 16, 17, 39}) {
    SCOPED_TRACE(i);
    ASSERT_EQ(write(pipes.write_ends[i], "x", 1), 1);
    EXPECT_LT(sleep_on(d, kLongUs), std::chrono::seconds(1));
    char c;
    ASSERT_EQ(read(pipes.read_ends[i], &c, 1), 1);
  }
}

TEST(Doorbell, RingWakesAndTimeoutEnds) {
  Pipes pipes(3);
  Doorbell d;
  d.watch(pipes.read_ends);
  EXPECT_GE(sleep_on(d, 20'000), std::chrono::milliseconds(15));
  std::thread ringer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    d.ring();
  });
  EXPECT_LT(sleep_on(d, kLongUs), std::chrono::seconds(1));
  ringer.join();
}

}  // namespace
}  // namespace tp
