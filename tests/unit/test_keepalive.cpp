// When keepalives happen (keepalive.hpp): each protocol's flows are refreshed well within its
// own timeout whatever the configured interval, and idle flows are probed once past expiry.
#include <gtest/gtest.h>

#include "keepalive.hpp"

namespace tp {
namespace {

TEST(Keepalive, TheRoundFitsTheShortestTimeoutOfWhatIsOffloaded) {
  ConntrackTimeouts t;  // the kernel's defaults: tcp 5 days, udp 30/120, icmp 30
  EXPECT_EQ(keepalive_tick_s(60, t, true, true, true), 10u);    // icmp 30 s: every 10 s
  EXPECT_EQ(keepalive_tick_s(60, t, true, false, false), 60u);  // tcp only: as configured
  EXPECT_EQ(keepalive_tick_s(5, t, true, true, true), 5u);      // shorter configured: kept
  t.udp = 6;
  t.udp_stream = 6;
  EXPECT_EQ(keepalive_tick_s(60, t, false, true, false), 2u);
  t.udp = 1;
  EXPECT_EQ(keepalive_tick_s(60, t, false, true, false), 1u);  // never 0
}

TEST(Keepalive, ActiveFlowsAreRefreshedWithinAThirdOfTheirTimeout) {
  // UDP stream timeout 40 s, configured interval 60 s: refreshed once 13.3 s have passed.
  EXPECT_EQ(keepalive_step(true, 13'000, 40, 40, 60), KeepaliveStep::none);
  EXPECT_EQ(keepalive_step(true, 13'400, 40, 40, 60), KeepaliveStep::refresh);
  // TCP: the configured interval.
  EXPECT_EQ(keepalive_step(true, 59'000, 432000, 432000, 60), KeepaliveStep::none);
  EXPECT_EQ(keepalive_step(true, 60'000, 432000, 432000, 60), KeepaliveStep::refresh);
}

TEST(Keepalive, IdleFlowsAreProbedOncePastTheirKnownExpiry) {
  EXPECT_EQ(keepalive_step(false, 5'999, 6, 6, 2), KeepaliveStep::none);
  EXPECT_EQ(keepalive_step(false, 6'000, 6, 6, 2), KeepaliveStep::probe);
  EXPECT_EQ(keepalive_step(false, 0, 30, 0, 60), KeepaliveStep::probe);  // expiry unknown
}

}  // namespace
// The kernel engine stops forwarding after the daemon dies before any carried flow's conntrack
// entry can expire: lab defaults (icmp/udp 30 s, rounds every 10 s, a 1 s heartbeat) give 9 s.
TEST(Keepalive, LivenessBoundStaysInsideTheShortestTimeout) {
  ConntrackTimeouts t;
  t.tcp_established = 432000;
  t.udp = 30;
  t.udp_stream = 120;
  t.icmp = 30;
  t.icmpv6 = 30;
  EXPECT_EQ(liveness_bound_ms(t, true, true, true, 10, 1000), 9000u);
  // TCP alone: hours, as its entries live for days.
  EXPECT_EQ(liveness_bound_ms(t, true, false, false, 60, 1000), 432000000u - 120000u - 1000u);
  // Timeouts too short for any margin: the floor still lets a heartbeat arrive in between.
  t.icmp = 3;
  EXPECT_EQ(liveness_bound_ms(t, false, false, true, 1, 1000), 2000u);
}

// A refresh leaves the kernel one timeout after the flow's last packet, at least 1 s; a last use
// stamped a little ahead of the clock's reading (or across the ms clock's wrap) is not idle time.
TEST(Keepalive, RefreshCountsFromTheLastPacket) {
  EXPECT_EQ(refreshed_timeout_s(120, 50000, 20000), 90u);
  EXPECT_EQ(refreshed_timeout_s(120, 50000, 50000), 120u);
  EXPECT_EQ(refreshed_timeout_s(120, 500000, 20000), 1u);        // idle past the timeout
  EXPECT_EQ(refreshed_timeout_s(120, 50000, 50004), 120u);       // stamped a tick ahead
  EXPECT_EQ(refreshed_timeout_s(120, 2000, 4294966296u), 117u);  // 3 s ago, across the wrap
}

}  // namespace tp
