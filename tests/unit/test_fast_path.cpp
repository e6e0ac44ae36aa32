// The engine boundary behaves the same on every engine: installs are both directions or neither,
// removal takes both, use, limits, rules, topology and counters read back alike.
#include <gtest/gtest.h>

#include <cerrno>
#include <optional>
#include <span>
#include <vector>

#include "engine_under_test.hpp"
#include "golden_cases.hpp"

namespace tp::test {
namespace {

using namespace lab;

uint16_t be16(uint16_t v) { return __builtin_bswap16(v); }

FlowKey4 up_key(uint16_t cport, uint8_t proto = 6) {
  return {ip4(kWifiClient), ip4(kServer), be16(cport), be16(80), proto, kWifi, 0};
}
FlowKey4 down_key(uint16_t nat, uint8_t proto = 6) {
  return {ip4(kServer), ip4(kModemAddr), be16(80), be16(nat), proto, kModem, 0};
}

class FastPathTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string why;
    ut = make_engine(GetParam(), why);
    if (!ut) GTEST_SKIP() << "engine " << GetParam() << " cannot run here: " << why;
    install_lab_topology(fp());
  }
  FastPath& fp() { return ut->engine(); }
  int add(uint16_t cport, uint16_t nat) {
    return add_masquerade4(fp(), 6, kWifiClient, cport, kServer, 80, nat);
  }

  std::unique_ptr<EngineUnderTest> ut;
};

TEST_P(FastPathTest, InstallIsBothDirectionsOrNeither) {
  ASSERT_EQ(add(40000, 61000), 0);
  EXPECT_TRUE(fp().usage(up_key(40000)).has_value());
  EXPECT_TRUE(fp().usage(down_key(61000)).has_value());
  // The same NAT port again: the reply direction is taken, so the original is not left behind.
  EXPECT_EQ(add(40001, 61000), -EEXIST);
  EXPECT_FALSE(fp().usage(up_key(40001)).has_value());
  EXPECT_EQ(add(40000, 61001), -EEXIST);
  EXPECT_FALSE(fp().usage(down_key(61001)).has_value());
  EXPECT_EQ(ut->send(kWifi, up4().tcp(40000, 80, kAck).build()), "port:0");
}

TEST_P(FastPathTest, RemoveTakesBothDirections) {
  ASSERT_EQ(add(40000, 61000), 0);
  fp().remove(up_key(40000), down_key(61000));
  EXPECT_FALSE(fp().usage(up_key(40000)).has_value());
  EXPECT_FALSE(fp().usage(down_key(61000)).has_value());
  EXPECT_EQ(ut->send(kWifi, up4().tcp(40000, 80, kAck).build()), "unknown_flow");
  // No flow, and addressed to the box: the kernel's.
  EXPECT_EQ(ut->send(kModem, down4().tcp(80, 61000, kAck).build()), "local");
  // The keys are free again.
  EXPECT_EQ(add(40000, 61000), 0);
}

TEST_P(FastPathTest, UseFollowsPacketsOnTheEngineClock) {
  ASSERT_EQ(add(40000, 61000), 0);
  const uint32_t before = fp().clock_ms();
  for (int i = 0; i < 3; ++i)
    ASSERT_EQ(ut->send(kWifi, up4().tcp(40000, 80, kAck).payload(100).build()), "port:0");
  const uint32_t after = fp().clock_ms();
  const FlowUsage u = *fp().usage(up_key(40000));
  EXPECT_EQ(u.packets, 3u);
  EXPECT_EQ(u.bytes, 3u * 140);
  EXPECT_GE(u.last_used_ms, before);
  EXPECT_LE(u.last_used_ms, after);
  const FlowUsage d = *fp().usage(down_key(61000));
  EXPECT_EQ(d.packets, 0u);
}

// read_usage answers as usage() does, key by key, with nullopt for what is not installed: a few
// keys (engines may look those up one by one) and more than a batch's worth of flows.
// A policy reset removes thousands at once (BPF: in batches). A pair already gone in the middle
// does not stop the rest.
TEST_P(FastPathTest, RemoveManyTakesEveryPairEvenPastOneAlreadyGone) {
  std::vector<std::pair<FlowKey4, FlowKey4>> pairs;
  for (uint16_t i = 0; i < 300; ++i) {
    ASSERT_EQ(add(static_cast<uint16_t>(30000 + i), static_cast<uint16_t>(50000 + i)), 0);
    pairs.emplace_back(up_key(static_cast<uint16_t>(30000 + i)),
                       down_key(static_cast<uint16_t>(50000 + i)));
  }
  fp().remove(pairs[100].first, pairs[100].second);
  ASSERT_EQ(add(40000, 61000), 0);  // not asked for: stays
  fp().remove_many(std::span<const std::pair<FlowKey4, FlowKey4>>(pairs));
  for (const auto& [o, r] : pairs) {
    EXPECT_FALSE(fp().usage(o).has_value());
    EXPECT_FALSE(fp().usage(r).has_value());
  }
  EXPECT_TRUE(fp().usage(up_key(40000)).has_value());
  EXPECT_EQ(ut->send(kWifi, up4().tcp(30299, 80, kAck).build()), "unknown_flow");
}

TEST_P(FastPathTest, ReadUsageAnswersAsUsage) {
  for (const uint16_t flows : {uint16_t{4}, uint16_t{1500}}) {
    SCOPED_TRACE(flows);
    for (uint16_t i = 0; i < flows; ++i)
      ASSERT_EQ(add(static_cast<uint16_t>(30000 + i), static_cast<uint16_t>(50000 + i)), 0);
    for (int i = 0; i < 3; ++i)
      ASSERT_EQ(ut->send(kWifi, up4().tcp(30001, 80, kAck).payload(100).build()), "port:0");
    ASSERT_EQ(ut->send(kModem, down4().tcp(80, 50000, kAck).payload(10).build()), "port:1");
    std::vector<FlowKey4> keys;
    for (uint16_t i = 0; i < flows; ++i) {
      keys.push_back(up_key(static_cast<uint16_t>(30000 + i)));
      keys.push_back(down_key(static_cast<uint16_t>(50000 + i)));
    }
    keys.push_back(up_key(29999));  // not installed
    keys.insert(keys.begin() + 1, down_key(49999));
    std::vector<std::optional<FlowUsage>> out(keys.size(), FlowUsage{7, 7, 7});
    fp().read_usage(std::span<const FlowKey4>(keys), std::span(out));
    for (size_t i = 0; i < keys.size(); ++i) {
      const std::optional<FlowUsage> want = fp().usage(keys[i]);
      ASSERT_EQ(out[i].has_value(), want.has_value()) << "key " << i;
      if (!want) continue;
      EXPECT_EQ(out[i]->packets, want->packets) << "key " << i;
      EXPECT_EQ(out[i]->bytes, want->bytes) << "key " << i;
      EXPECT_EQ(out[i]->last_used_ms, want->last_used_ms) << "key " << i;
    }
    // keys: up 30000, down 49999 (missing), down 50000, up 30001, ...
    EXPECT_FALSE(out[1].has_value());
    EXPECT_FALSE(out.back().has_value());
    EXPECT_EQ(out[0]->packets, 0u);
    EXPECT_EQ(out[2]->packets, 1u);
    EXPECT_EQ(out[2]->bytes, 50u);
    EXPECT_EQ(out[3]->packets, 3u);
    EXPECT_EQ(out[3]->bytes, 3u * 140);
    for (uint16_t i = 0; i < flows; ++i)
      fp().remove(up_key(static_cast<uint16_t>(30000 + i)),
                  down_key(static_cast<uint16_t>(50000 + i)));
  }
  // IPv6: the installed lab pair, and a key never installed.
  ASSERT_EQ(add_route6(fp(), 17, kWifiClient6, 40000, kServer6, 53), 0);
  ASSERT_EQ(ut->send(kWifi, up6().udp(40000, 53).payload(20).build()), "port:0");
  const FlowKey6 k6{ip6(kWifiClient6), ip6(kServer6), be16(40000), be16(53), 17, kWifi, 0};
  FlowKey6 missing = k6;
  missing.sport = be16(40001);
  const std::vector<FlowKey6> keys6 = {missing, k6};
  std::vector<std::optional<FlowUsage>> out6(2);
  fp().read_usage(std::span<const FlowKey6>(keys6), std::span(out6));
  EXPECT_FALSE(out6[0].has_value());
  ASSERT_TRUE(out6[1].has_value());
  EXPECT_EQ(out6[1]->packets, 1u);
  EXPECT_EQ(out6[1]->bytes, 68u);
}

TEST_P(FastPathTest, CountersByPortAndReason) {
  ASSERT_EQ(add(40000, 61000), 0);
  const PortCounts wifi0 = fp().port_counts(kWifi), modem0 = fp().port_counts(kModem);
  const ReasonTotals r0 = fp().reasons();
  ASSERT_EQ(ut->send(kWifi, up4().tcp(40000, 80, kAck).payload(60).build()), "port:0");
  ASSERT_EQ(ut->send(kWifi, up4().tcp(40000, 80, kSyn).build()), "tcp_control");
  ASSERT_EQ(ut->send(kWifi, up4().tcp(40009, 80, kAck).build()), "unknown_flow");
  const PortCounts wifi = fp().port_counts(kWifi), modem = fp().port_counts(kModem);
  const ReasonTotals r = fp().reasons();
  EXPECT_EQ(wifi.rx_packets - wifi0.rx_packets, 3u);
  EXPECT_EQ(wifi.rx_ip_bytes - wifi0.rx_ip_bytes, 100u + 40 + 40);
  EXPECT_EQ(wifi.fwd_rx_packets - wifi0.fwd_rx_packets, 1u);
  EXPECT_EQ(wifi.fwd_rx_bytes - wifi0.fwd_rx_bytes, 100u);
  EXPECT_EQ(modem.fwd_tx_packets - modem0.fwd_tx_packets, 1u);
  EXPECT_EQ(modem.fwd_tx_bytes - modem0.fwd_tx_bytes, 100u);
  EXPECT_EQ(wifi.punted - wifi0.punted, 2u);
  auto delta = [&](Reason x) {
    const auto i = static_cast<std::size_t>(x);
    return r[i] - r0[i];
  };
  EXPECT_EQ(delta(Reason::tcp_control), 1u);
  EXPECT_EQ(delta(Reason::unknown_flow), 1u);
}

// The packet that reaches the limit still goes (it was under when it arrived); from the next
// one on, everything through the port is the kernel's, both directions, until disarmed.
TEST_P(FastPathTest, DataLimitPuntsOnceReached) {
  ASSERT_EQ(add(40000, 61000), 0);
  const Bytes up = up4().tcp(40000, 80, kAck).payload(460).build();  // 500 IP bytes
  fp().arm_limit(kModem, 1000, 0);
  EXPECT_EQ(fp().limit_used(kModem), 0u);
  EXPECT_FALSE(fp().limit_reached(kModem));
  EXPECT_EQ(ut->send(kWifi, up), "port:0");
  EXPECT_EQ(fp().limit_used(kModem), 500u);
  EXPECT_FALSE(fp().limit_reached(kModem));
  EXPECT_EQ(ut->send(kWifi, up), "port:0");
  EXPECT_EQ(fp().limit_used(kModem), 1000u);
  EXPECT_TRUE(fp().limit_reached(kModem));
  EXPECT_EQ(ut->send(kWifi, up), "data_limit");
  EXPECT_EQ(ut->send(kModem, down4().tcp(80, 61000, kAck).build()), "data_limit");
  // Limits on another port leave this one alone.
  fp().disarm_limit(kModem);
  EXPECT_FALSE(fp().limit_reached(kModem));
  fp().arm_limit(kUsb, 0, 0);
  EXPECT_EQ(ut->send(kWifi, up), "port:0");
  // Re-arming restarts from the figure given (a persisted one after a restart).
  fp().arm_limit(kModem, 2000, 1800);
  EXPECT_EQ(ut->send(kWifi, up), "port:0");
  EXPECT_TRUE(fp().limit_reached(kModem));
}

TEST_P(FastPathTest, Ipv6RulesInstallAndRemove) {
  const auto client6 = ip6(kWifiClient6);
  const RuleKey6 to_client = rule_key6(client6.data(), Rule6::client, kModem, 0);
  ASSERT_EQ(fp().add_rule({to_client, kNhWifiClient}), 0);
  EXPECT_EQ(fp().add_rule({to_client, kNhWifiClient}), -EEXIST);
  EXPECT_TRUE(fp().usage(to_client).has_value());
  EXPECT_EQ(ut->send(kModem, down6().udp(53, 5353).payload(20).build()), "port:1");
  fp().remove_rule(to_client);
  EXPECT_FALSE(fp().usage(to_client).has_value());
  EXPECT_EQ(ut->send(kModem, down6().udp(53, 5353).payload(20).build()), "unknown_flow");
}

TEST_P(FastPathTest, TopologyEditsReadBackAndApply) {
  ASSERT_EQ(add(40000, 61000), 0);
  fp().update_topology([](Topology& t) { t.nexthops[kNhGateway].dst_mac.addr_bytes[5] = 0xef; });
  EXPECT_EQ(fp().topology().nexthops[kNhGateway].dst_mac.addr_bytes[5], 0xef);
  Bytes out;
  ASSERT_EQ(ut->send(kWifi, up4().tcp(40000, 80, kAck).build(), &out), "port:0");
  EXPECT_EQ(out[5], 0xef);  // the new next-hop MAC, for a flow installed before the change
  fp().update_topology([](Topology& t) { t.nexthops[kNhGateway].valid = false; });
  EXPECT_EQ(ut->send(kWifi, up4().tcp(40000, 80, kAck).build()), "no_nexthop");
  fp().update_topology([](Topology& t) { t.ports[kWifi].enabled = false; });
  EXPECT_EQ(ut->send(kWifi, up4().tcp(40000, 80, kAck).build()), "port_disabled");
}

INSTANTIATE_TEST_SUITE_P(Engines, FastPathTest, ::testing::ValuesIn(engine_kind_names(false)),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace tp::test
