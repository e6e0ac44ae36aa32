// The shared packet-golden table (golden_cases.hpp) through every engine, with the flows installed
// through the engine boundary: the same output bytes, egress port and exception reason for each.
#include <gtest/gtest.h>

#include "engine_under_test.hpp"
#include "golden_cases.hpp"

namespace tp::test {
namespace {

class GoldenTable : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string why;
    ut = make_engine(GetParam(), why);
    if (!ut) GTEST_SKIP() << "engine " << GetParam() << " cannot run here: " << why;
    install_golden_state(ut->engine());
  }

  void check(const Golden& g) {
    SCOPED_TRACE(g.name);
    Bytes out;
    const Bytes in = ut->on_wire(g.in_port, g.in);
    const std::string where = ut->send(g.in_port, in, &out);
    if (where.rfind("skip:", 0) == 0) {
      std::printf("  [%s] not run: %s: %s\n", GetParam().c_str(), g.name.c_str(),
                  where.c_str() + 5);
      return;
    }
    if (g.out_port) {
      ASSERT_EQ(where, "port:" + std::to_string(*g.out_port));
      // The expected frame's checksums are computed in full; the output must be it, byte for byte.
      EXPECT_EQ(verify_checksums(g.out), "");
      EXPECT_EQ(hex(out), hex(ut->on_wire(*g.out_port, g.out)));
    } else {
      ASSERT_EQ(where, std::string(name(g.reason)));
      // A punted packet reaches the kernel exactly as it arrived.
      if (!is_drop(g.reason)) {
        EXPECT_EQ(hex(out), hex(in));
      }
    }
  }

  std::unique_ptr<EngineUnderTest> ut;
};

TEST_P(GoldenTable, Forwarding) {
  for (const auto& g : golden_forwarding_cases()) check(g);
}

TEST_P(GoldenTable, Exceptions) {
  for (const auto& g : golden_exception_cases()) check(g);
}

INSTANTIATE_TEST_SUITE_P(Engines, GoldenTable, ::testing::ValuesIn(engine_kind_names(true)),
                         [](const auto& info) { return info.param; });

// Every reason has a case, in the shared table or in an engine's own (named here).
TEST(GoldenTableCoverage, EveryReasonIsCovered) {
  std::array<bool, kReasonCount> seen{};
  for (const auto& g : golden_exception_cases()) seen[static_cast<size_t>(g.reason)] = true;
  seen[static_cast<size_t>(Reason::no_headroom)] = true;  // DPDK: NoHeadroomPuntsUntouched
  seen[static_cast<size_t>(Reason::data_limit)] = true;   // FastPathTest.DataLimitPuntsOnceReached
  seen[static_cast<size_t>(Reason::xdp_egress)] = true;   // BpfFastPathTest.XdpEgressWithoutXdp...
  seen[static_cast<size_t>(Reason::stale_heartbeat)] = true;  // BpfFastPathTest.StaleHeartbeat...
  // Not producible: the BPF programs' drop of a frame a rewrite step refused after an earlier step
  // changed it, which the order of the steps rules out (tc.bpf.c tp_tc_apply, xdp.bpf.c).
  seen[static_cast<size_t>(Reason::rewrite_failed)] = true;
  for (size_t r = 0; r < kReasonCount; ++r) EXPECT_TRUE(seen[r]) << name(static_cast<Reason>(r));
}

}  // namespace
}  // namespace tp::test
