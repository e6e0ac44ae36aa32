// One daemon per state directory, also while instances start and stop around each other.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

#include "instance_lock.hpp"

namespace tp {
namespace {

class InstanceLockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tp-lock-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir); }

  std::optional<InstanceLock> try_lock() {
    try {
      return std::optional<InstanceLock>(std::in_place, dir);
    } catch (const std::runtime_error&) {
      return std::nullopt;
    }
  }

  std::string dir;
};

TEST_F(InstanceLockTest, SecondInstanceIsRefusedWithThePid) {
  InstanceLock first(dir);
  try {
    InstanceLock second(dir);
    FAIL() << "two instances hold the lock";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("pid " + std::to_string(getpid())), std::string::npos)
        << e.what();
  }
}

// An instance that opened the lock file while the previous one still held it (open, then flock)
// gets the lock once the previous one exits. A third one starting then must see it held: the
// file it opens must be the one the second locked, not a new one under the same name.
TEST_F(InstanceLockTest, AnInstanceThatOpenedTheFileBeforeTheOwnerExitedStillExcludes) {
  auto first = try_lock();
  ASSERT_TRUE(first);
  const int second = open((dir + "/tetherpath.lock").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(second, 0);
  EXPECT_NE(flock(second, LOCK_EX | LOCK_NB), 0);  // held by the first
  first.reset();
  ASSERT_EQ(flock(second, LOCK_EX | LOCK_NB), 0);  // the second instance's turn
  EXPECT_FALSE(try_lock()) << "a third instance runs beside the second";
  close(second);
  EXPECT_TRUE(try_lock());
}

// Instances starting and stopping at random: never two at once.
TEST_F(InstanceLockTest, NeverTwoHoldersUnderContention) {
  std::atomic<int> holders{0}, most{0}, acquired{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        auto lock = try_lock();
        if (!lock) continue;
        const int now = ++holders;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
        ++acquired;
        std::this_thread::yield();
        --holders;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(most.load(), 1);
  EXPECT_GT(acquired.load(), 0);
}

}  // namespace
}  // namespace tp
