// The runtime on real DPDK devices (net_null, receiving nothing) and real kernel TAPs, inside a
// network namespace of the test's own, so that no interface is left on the host even if the test
// dies: starting and stopping workers.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <rte_launch.h>
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "config.hpp"
#include "dpdk_env.hpp"
#include "runtime.hpp"

namespace tp {
namespace {

// The calling thread (the main lcore) moves into a new network namespace, and back when done. The
// namespace and its TAPs go away with their last user: this scope, or the process if it dies.
class PrivateNetns {
 public:
  PrivateNetns() : home_(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)) {
    ok_ = home_ >= 0 && unshare(CLONE_NEWNET) == 0;
  }
  ~PrivateNetns() {
    if (home_ < 0) return;
    if (setns(home_, CLONE_NEWNET) != 0) std::abort();  // the other tests must not run in here
    close(home_);
  }
  PrivateNetns(const PrivateNetns&) = delete;
  PrivateNetns& operator=(const PrivateNetns&) = delete;
  bool ok() const { return ok_; }

 private:
  int home_;
  bool ok_ = false;
};

// Two ports on null devices with `queues` RX queues each, workers on lcores 1 and 2.
conf::Config config(unsigned queues) {
  static int run = 0;  // fresh device names for every runtime
  const std::string n = std::to_string(run++), q = std::to_string(queues);
  return conf::load_string(R"(ports:
  - {name: tprt0, role: upstream, device: "net_null_rt)" +
                               n + R"(a,no-rx=1", queues: )" + q + R"(}
  - {name: tprt1, role: downstream, device: "net_null_rt)" +
                               n + R"(b,no-rx=1", queues: )" + q + R"(}
dataplane:
  worker_lcores: [1, 2]
  flow_capacity: 1024
  exception_ring_size: 1024
)",
                           "runtime-test.yaml");
}

// Keeps an lcore busy, as if something else ran there, until it goes out of scope.
class Occupied {
 public:
  explicit Occupied(unsigned lcore) : lcore_(lcore) {
    launched_ = rte_eal_remote_launch(&hold, this, lcore) == 0;
  }
  ~Occupied() {
    release_ = true;
    if (launched_) rte_eal_wait_lcore(lcore_);
  }
  bool launched() const { return launched_; }

 private:
  static int hold(void* self) {
    while (!static_cast<Occupied*>(self)->release_.load())
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return 0;
  }
  unsigned lcore_;
  bool launched_ = false;
  std::atomic<bool> release_{false};
};

TEST(Runtime, StartsAndStopsItsWorkers) {
  test::init_eal();
  PrivateNetns ns;
  ASSERT_TRUE(ns.ok());
  Runtime rt(config(1));
  rt.start();
  EXPECT_EQ(rte_eal_get_lcore_state(1), RUNNING);
  EXPECT_EQ(rte_eal_get_lcore_state(2), RUNNING);
  rt.stop();
  EXPECT_EQ(rte_eal_get_lcore_state(1), WAIT);
  EXPECT_EQ(rte_eal_get_lcore_state(2), WAIT);
}

// The second worker's lcore is taken: start() fails after the first worker runs. That worker must
// be stopped and joined before start() gives up, or the runtime frees it while it still runs.
TEST(Runtime, AFailedStartLeavesNoWorkerRunning) {
  test::init_eal();
  PrivateNetns ns;
  ASSERT_TRUE(ns.ok());
  Runtime rt(config(1));
  Occupied busy(2);
  ASSERT_TRUE(busy.launched());
  try {
    rt.start();
    ADD_FAILURE() << "started on an lcore that was busy";
  } catch (const RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("lcore 2"), std::string::npos) << e.what();
  }
  EXPECT_EQ(rte_eal_get_lcore_state(1), WAIT) << "the first worker still runs";
}

// Many queues: the pool must hold what every descriptor, ring and cache can keep from it at once,
// or the ports run dry (rx_nombuf) or fail to start. Counted here from the configuration alone.
TEST(Runtime, PacketPoolHoldsEveryDescriptorRingAndCache) {
  test::init_eal();
  PrivateNetns ns;
  ASSERT_TRUE(ns.ok());
  const conf::Config cfg = config(16);
  Runtime rt(cfg);
  const uint64_t ports = 2, workers = 2, burst = cfg.dataplane.burst;
  const uint64_t rx = ports * 16 * 1024;       // RX descriptors
  const uint64_t tx = ports * workers * 1024;  // a TX queue per worker
  const uint64_t rings = ports * workers * cfg.dataplane.exception_ring_size;  // punt rings
  const uint64_t caches = (workers + 1) * 384;  // each lcore's cache at its flush threshold
  const uint64_t bursts = workers * burst * (1 + ports);  // received, and in the TX buffers
  EXPECT_GE(rt.free_mbufs().first, rx + tx + rings + caches + bursts);
}

}  // namespace
}  // namespace tp
