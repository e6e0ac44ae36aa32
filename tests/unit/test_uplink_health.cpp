// An uplink's health from probe rounds (mwan3track's counting) and the choice of the uplinks
// that take new connections: pure logic, every transition.
#include <gtest/gtest.h>

#include "uplink_health.hpp"
#include "uplink_monitor.hpp"

namespace tp {
namespace {

conf::TrackConfig two_targets() {
  conf::TrackConfig c;
  c.targets = {*IpAddr::parse("198.51.100.1"), *IpAddr::parse("198.51.100.2")};
  c.down = 3;
  c.up = 2;
  c.max_loss_pct = 20;
  c.max_rtt_ms = 300;
  return c;
}

const ProbeRound kGood{{20.0, 30.0}};
const ProbeRound kNone{{std::nullopt, std::nullopt}};
const ProbeRound kOneLost{{20.0, std::nullopt}};
const ProbeRound kSlow{{500.0, 700.0}};

TEST(UplinkHealth, DownAfterTheConfiguredRunOfFailedRoundsAndBackAfterTheUpRun) {
  HealthTracker t(two_targets());
  EXPECT_EQ(t.state(), Health::up);
  EXPECT_FALSE(t.feed(kGood));
  EXPECT_EQ(t.last_rtt_ms(), 25.0);
  EXPECT_FALSE(t.feed(kNone));
  EXPECT_FALSE(t.feed(kNone));
  EXPECT_EQ(t.feed(kNone), Health::down);
  EXPECT_EQ(t.last_rtt_ms(), std::nullopt);
  EXPECT_FALSE(t.feed(kNone));
  EXPECT_FALSE(t.feed(kGood));  // one answer is not a recovery
  EXPECT_EQ(t.feed(kGood), Health::up);
  EXPECT_DOUBLE_EQ(t.loss_pct(), 0.0);  // the outage's losses do not count against the path back
}

TEST(UplinkHealth, APathBackThatStillLosesIsDegraded) {
  HealthTracker t(two_targets());
  t.feed(kNone);
  t.feed(kNone);
  ASSERT_EQ(t.feed(kNone), Health::down);
  EXPECT_FALSE(t.feed(kOneLost));
  EXPECT_EQ(t.feed(kOneLost), Health::degraded);  // answers, but half the probes are lost
}

TEST(UplinkHealth, AFailedRoundInARunResetsIt) {
  conf::TrackConfig c = two_targets();
  c.max_loss_pct = 100;  // failures only
  HealthTracker t(c);
  t.feed(kNone);
  t.feed(kNone);
  t.feed(kGood);
  t.feed(kNone);
  EXPECT_FALSE(t.feed(kNone));
  EXPECT_EQ(t.state(), Health::up);
  EXPECT_EQ(t.feed(kNone), Health::down);
}

TEST(UplinkHealth, ReliabilityCountsTargetsThatAnswer) {
  conf::TrackConfig c = two_targets();
  c.reliability = 2;
  c.max_loss_pct = 100;
  HealthTracker t(c);
  t.feed(kOneLost);
  t.feed(kOneLost);
  EXPECT_EQ(t.feed(kOneLost), Health::down);  // one target of the two required answered
  conf::TrackConfig l = two_targets();
  l.max_loss_pct = 100;
  HealthTracker one(l);
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(one.feed(kOneLost));
  EXPECT_EQ(one.state(), Health::up);
  EXPECT_DOUBLE_EQ(one.loss_pct(), 50.0);
}

TEST(UplinkHealth, LossAboveTheBoundIsDegradedNotDown) {
  HealthTracker t(two_targets());
  EXPECT_FALSE(t.feed(kOneLost));  // 50 % of the window so far
  EXPECT_FALSE(t.feed(kOneLost));
  EXPECT_EQ(t.feed(kOneLost), Health::degraded);
  // Healthy again once the window's loss is under 20 %: the lost probes age out.
  std::optional<Health> back;
  int rounds = 0;
  while (!back && rounds < 20) {
    back = t.feed(kGood);
    ++rounds;
  }
  EXPECT_EQ(back, Health::up);
  EXPECT_GE(rounds, 5);  // 3 lost of 2x10: 15 %, and two healthy rounds in a row
}

TEST(UplinkHealth, SlowAnswersAreDegraded) {
  HealthTracker t(two_targets());
  t.feed(kSlow);
  t.feed(kSlow);
  EXPECT_EQ(t.feed(kSlow), Health::degraded);
  EXPECT_EQ(t.last_rtt_ms(), 600.0);
  t.feed(kGood);
  EXPECT_EQ(t.feed(kGood), Health::up);
}

TEST(UplinkHealth, ALostLinkIsDownAtOnceAndAProbedOneReturnsOnlyByProbes) {
  HealthTracker t(two_targets());
  EXPECT_EQ(t.link(false), Health::down);
  EXPECT_FALSE(t.link(true));
  EXPECT_EQ(t.state(), Health::down);
  t.feed(kGood);
  EXPECT_EQ(t.feed(kGood), Health::up);

  HealthTracker plain(conf::TrackConfig{});  // link state only
  EXPECT_EQ(plain.link(false), Health::down);
  EXPECT_EQ(plain.link(true), Health::up);
}

TEST(UplinkChoice, LowestMetricHealthyByDefaultAndEqualMetricsShare) {
  const SteadyTime now = std::chrono::steady_clock::now();
  std::vector<UplinkCandidate> c{{10, Health::up, {}}, {20, Health::up, {}}, {10, Health::up, {}}};
  EXPECT_EQ(choose_active(c, now), (std::vector<std::size_t>{0, 2}));
  c[0].health = Health::down;
  EXPECT_EQ(choose_active(c, now), (std::vector<std::size_t>{2}));
  c[2].health = Health::degraded;  // a healthy uplink of a worse metric beats a degraded one
  EXPECT_EQ(choose_active(c, now), (std::vector<std::size_t>{1}));
  c[1].health = Health::down;
  EXPECT_EQ(choose_active(c, now), (std::vector<std::size_t>{2}));
  c[2].health = Health::down;
  EXPECT_TRUE(choose_active(c, now).empty());
}

TEST(UplinkChoice, FailbackWaitsForTheHoldUnlessNothingElseIsThere) {
  const SteadyTime now = std::chrono::steady_clock::now();
  const SteadyTime later = now + std::chrono::seconds(30);
  std::vector<UplinkCandidate> c{{10, Health::up, later}, {20, Health::up, {}}};
  EXPECT_EQ(choose_active(c, now), (std::vector<std::size_t>{1}));
  EXPECT_EQ(choose_active(c, later), (std::vector<std::size_t>{0}));
  c[1].health = Health::down;
  EXPECT_EQ(choose_active(c, now), (std::vector<std::size_t>{0}));
}

}  // namespace
}  // namespace tp
