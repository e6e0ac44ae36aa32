// The runtime on real DPDK devices (net_null, receiving nothing) and real kernel TAPs, inside a
// network namespace of the test's own, so that no interface is left on the host even if the test
// dies: starting and stopping workers.
#include <gtest/gtest.h>

#include <rte_launch.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <thread>

#include "config.hpp"
#include "dpdk_env.hpp"
#include "dpdk_runtime.hpp"
#include "netns.hpp"

namespace tp {
namespace {

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

TEST(DpdkRuntime, StartsAndStopsItsWorkers) {
  test::init_eal();
  test::PrivateNetns ns;
  if (!ns.ok()) GTEST_SKIP() << "needs root: a network namespace of its own";
  DpdkRuntime rt(config(1));
  rt.start();
  EXPECT_EQ(rte_eal_get_lcore_state(1), RUNNING);
  EXPECT_EQ(rte_eal_get_lcore_state(2), RUNNING);
  rt.stop();
  EXPECT_EQ(rte_eal_get_lcore_state(1), WAIT);
  EXPECT_EQ(rte_eal_get_lcore_state(2), WAIT);
}

// The second worker's lcore is taken: start() fails after the first worker runs. That worker must
// be stopped and joined before start() gives up, or the runtime frees it while it still runs.
TEST(DpdkRuntime, AFailedStartLeavesNoWorkerRunning) {
  test::init_eal();
  test::PrivateNetns ns;
  if (!ns.ok()) GTEST_SKIP() << "needs root: a network namespace of its own";
  DpdkRuntime rt(config(1));
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
TEST(DpdkRuntime, PacketPoolHoldsEveryDescriptorRingAndCache) {
  test::init_eal();
  test::PrivateNetns ns;
  if (!ns.ok()) GTEST_SKIP() << "needs root: a network namespace of its own";
  const conf::Config cfg = config(16);
  DpdkRuntime rt(cfg);
  const uint64_t ports = 2, workers = 2, burst = cfg.dataplane.burst;
  const uint64_t rx = ports * 16 * 1024;       // RX descriptors
  const uint64_t tx = ports * workers * 1024;  // a TX queue per worker
  const uint64_t rings = ports * workers * cfg.dataplane.exception_ring_size;  // punt rings
  const uint64_t caches = (workers + 1) * 384;  // each lcore's cache at its flush threshold
  const uint64_t bursts = workers * burst * (1 + ports);  // received, and in the TX buffers
  EXPECT_GE(rt.free_mbufs()->first, rx + tx + rings + caches + bursts);
}

// The kernel's MTUs of a port's TAP, set after start (`ip link set tprt0 mtu`, and the IPv6 MTU a
// router advertisement sets, as in /proc/sys/net/ipv6/conf/tprt0/mtu), reach the topology the
// workers read at the next link poll.
TEST(DpdkRuntime, LaterMtuChangesOfTheTapsReachTheTopology) {
  test::init_eal();
  test::PrivateNetns ns;
  if (!ns.ok()) GTEST_SKIP() << "needs root: a network namespace of its own";
  DpdkRuntime rt(config(1));
  auto port = [&](int i) { return rt.topology().get()->ports[i]; };
  ASSERT_EQ(system("ip link set tprt0 mtu 1400"), 0);
  rt.poll_links();
  EXPECT_EQ(port(0).mtu, 1400);
  EXPECT_EQ(port(0).mtu6, 1400);  // the kernel lowers the IPv6 MTU with the link's
  EXPECT_EQ(port(1).mtu, 1500);
  {
    std::ofstream ra("/proc/sys/net/ipv6/conf/tprt0/mtu");
    ra << 1300;
  }
  rt.poll_links();
  EXPECT_EQ(port(0).mtu, 1400);
  EXPECT_EQ(port(0).mtu6, 1300);
  // Above the port's configured MTU (1500) the port itself is the limit.
  ASSERT_EQ(system("ip link set tprt1 mtu 9000"), 0);
  rt.poll_links();
  EXPECT_EQ(port(1).mtu, 1500);
  EXPECT_EQ(port(1).mtu6, 1500);
}

}  // namespace
}  // namespace tp
