// Per-client statistics: the ledger keeps buckets monotonic over counters that restart and
// vanish; the fast path's per-flow counters, read live and at removal, add up to what a real
// engine forwarded; the kernel path's nft counters are parsed from nft's own JSON.
#include <gtest/gtest.h>

#include "dpdk_env.hpp"
#include "engine_harness.hpp"
#include "fake_kernel.hpp"
#include "flow_manager.hpp"
#include "session_limits.hpp"
#include "traffic_stats.hpp"

namespace tp::test {
namespace {

using namespace lab;

TrafficBucket bucket(const std::string& client, const std::string& session = "",
                     conf::Roaming r = conf::Roaming::home) {
  return {ip(client.c_str()), "modem", session, r};
}

CtKey key(uint16_t port) {
  CtKey k;
  k.family = AF_INET;
  k.proto = 6;
  k.orig = {ip("192.168.50.10"), ip("203.0.113.10"), port, 80};
  return k;
}

TEST(TrafficLedger, FoldsGrowthOnce) {
  TrafficLedger l;
  l.flow(key(1), bucket("192.168.50.10"), {10, 1000, 5, 500});
  l.flow(key(1), bucket("192.168.50.10"), {12, 1200, 5, 500});
  l.flow(key(1), bucket("192.168.50.10"), {12, 1200, 5, 500});
  EXPECT_EQ(l.buckets().at(bucket("192.168.50.10")), (Traffic{12, 1200, 5, 500}));
}

TEST(TrafficLedger, GrowthGoesToTheBucketOfItsTime) {
  TrafficLedger l;
  l.flow(key(1), bucket("192.168.50.10"), {10, 1000, 0, 0});
  l.flow(key(1), bucket("192.168.50.10", "", conf::Roaming::national), {15, 1500, 0, 0});
  EXPECT_EQ(l.buckets().at(bucket("192.168.50.10")).up_bytes, 1000u);
  EXPECT_EQ(l.buckets().at(bucket("192.168.50.10", "", conf::Roaming::national)).up_bytes, 500u);
}

TEST(TrafficLedger, RemovalCountsTheLastReadingAndForgets) {
  TrafficLedger l;
  l.flow(key(1), bucket("192.168.50.10"), {10, 1000, 0, 0});
  l.flow_gone(key(1), bucket("192.168.50.10"), {11, 1100, 1, 60});
  EXPECT_EQ(l.tracked_flows(), 0u);
  // The same connection offloaded again: its new counters start from zero.
  l.flow(key(1), bucket("192.168.50.10"), {3, 300, 0, 0});
  EXPECT_EQ(l.buckets().at(bucket("192.168.50.10")), (Traffic{14, 1400, 1, 60}));
  // Installed and removed between two readings: counted in full.
  l.flow_gone(key(2), bucket("192.168.50.10"), {1, 100, 0, 0});
  EXPECT_EQ(l.buckets().at(bucket("192.168.50.10")).up_bytes, 1500u);
}

TEST(TrafficLedger, ACounterThatStartedAgainCountsFromZero) {
  TrafficLedger l;
  l.kernel("up4 a", bucket("192.168.50.10"), {100, 10000, 0, 0});
  l.kernel("up4 a", bucket("192.168.50.10"), {2, 200, 0, 0});  // its table was made again
  EXPECT_EQ(l.buckets().at(bucket("192.168.50.10")).up_bytes, 10200u);
}

TEST(TrafficLedger, SweepForgetsFlowsNoLongerRead) {
  TrafficLedger l;
  l.flow(key(1), bucket("192.168.50.10"), {1, 100, 0, 0});
  l.flow(key(2), bucket("192.168.50.10"), {1, 100, 0, 0});
  l.sweep_flows();
  l.flow(key(1), bucket("192.168.50.10"), {2, 200, 0, 0});
  l.sweep_flows();
  EXPECT_EQ(l.tracked_flows(), 1u);
  EXPECT_EQ(l.buckets().at(bucket("192.168.50.10")).up_bytes, 300u);
}

TEST(TrafficLedger, AKernelCounterThatExpiredAndCameBackCountsInFull) {
  TrafficLedger l;
  l.kernel("up4 a", bucket("192.168.50.10"), {100, 10000, 0, 0});
  l.sweep_kernel();
  l.sweep_kernel();  // a complete reading without it: the element expired
  EXPECT_EQ(l.tracked_kernel(), 0u);
  l.kernel("up4 a", bucket("192.168.50.10"), {150, 15000, 0, 0});  // back, and past the old count
  EXPECT_EQ(l.buckets().at(bucket("192.168.50.10")).up_bytes, 25000u);
}

TEST(KernelTraffic, ParsesNftsJson) {
  // What `nft -j list table` printed for the lab (nftables 1.0.6).
  const std::string json = R"({"nftables": [{"metainfo": {"version": "1.0.6"}},
    {"table": {"family": "inet", "name": "tetherpath_traffic", "handle": 1}},
    {"set": {"family": "inet", "name": "up4", "table": "tetherpath_traffic",
      "type": ["ipv4_addr", "ifname", "mark"], "handle": 2, "size": 65536, "flags": ["dynamic"],
      "elem": [{"elem": {"val": {"concat": ["192.168.50.10", "modem0", 69632]},
                "counter": {"packets": 1776, "bytes": 2569119}}}], "stmt": [{"counter": null}]}},
    {"set": {"family": "inet", "name": "down6", "table": "tetherpath_traffic",
      "elem": [{"elem": {"val": {"concat": ["2001:db8::10", "phone0", 0]},
                "counter": {"packets": 3, "bytes": 300}}},
               {"elem": {"val": {"concat": ["not an address", "phone0", 0]},
                "counter": {"packets": 3, "bytes": 300}}}]}},
    {"set": {"name": "someone_elses", "elem": [{"elem": {"val": {"concat": ["10.0.0.1", "x", 1]},
      "counter": {"packets": 1, "bytes": 1}}}]}}]})";
  const auto counts = KernelTraffic::parse(json);
  ASSERT_EQ(counts.size(), 2u);
  EXPECT_TRUE(counts[0].up);
  EXPECT_EQ(counts[0].client, ip("192.168.50.10"));
  EXPECT_EQ(counts[0].iface, "modem0");
  EXPECT_EQ(counts[0].mark, 0x11000u);
  EXPECT_EQ(counts[0].bytes, 2569119u);
  EXPECT_FALSE(counts[1].up);
  EXPECT_EQ(counts[1].client, ip("2001:db8::10"));
  EXPECT_NE(counts[0].element, counts[1].element);
  EXPECT_TRUE(KernelTraffic::parse("not json").empty());
  EXPECT_TRUE(KernelTraffic::parse(R"({"nftables": 3})").empty());
}

TEST(KernelTraffic, CountsBetweenTheDownstreamsAndTheRest) {
  const std::string t = KernelTraffic::table_text({"wifi0", "usb0"}, false, true);
  EXPECT_NE(t.find("table ip tetherpath_traffic {"), std::string::npos) << t;
  EXPECT_NE(t.find("iifname { \"wifi0\", \"usb0\" } oifname != { \"wifi0\", \"usb0\" } update "
                   "@up4 { ip saddr . oifname . ct mark }"),
            std::string::npos)
      << t;
  EXPECT_EQ(t.find("ip6"), std::string::npos) << t;
  // After the filter chains: what they drop is not counted.
  EXPECT_NE(t.find("type filter hook forward priority 100;"), std::string::npos);
  const std::string t6 = KernelTraffic::table_text({"wifi0", "usb0"}, true, true);
  EXPECT_NE(t6.find("table ip6 tetherpath_traffic {"), std::string::npos) << t6;
  EXPECT_NE(t6.find("oifname { \"wifi0\", \"usb0\" } iifname != { \"wifi0\", \"usb0\" } update "
                    "@down6 { ip6 daddr . iifname . ct mark }"),
            std::string::npos)
      << t6;
}

TEST(KernelTraffic, UntrackedIpv6IsNotMadeTracked) {
  // With offload.ipv6: neighbours the kernel must keep not tracking IPv6: no ct expression.
  const std::string t6 = KernelTraffic::table_text({"wifi0"}, true, false);
  EXPECT_EQ(t6.find("ct "), std::string::npos) << t6;
  EXPECT_NE(t6.find("@up6 { ip6 saddr . oifname . meta mark }"), std::string::npos) << t6;
}

class TrafficStatsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    h = std::make_unique<EngineHarness>();
    sync = std::make_unique<TopologySync>(*h->fast_path);
    fm = std::make_unique<FlowManager>(*h->fast_path, *sync, kernel, config(), nullptr);
    fm->on_removed = [this](const FlowView& v) { stats.flow_removed(v); };
    stats.set_scene(scene(conf::Roaming::home));
  }
  static TrafficScene scene(conf::Roaming r) {
    TrafficScene s;
    s.ports = {{"modem0", false}, {"wifi0", true}, {"usb0", true}};
    s.session_mask = 0xf0000;
    s.session_by_mark[0x10000] = "passenger";
    s.uplinks["modem0"] = {"modem", r};
    return s;
  }
  void send_up(int n) {
    for (int i = 0; i < n; ++i) {
      const Bytes in = PacketBuilder()
                           .eth(kWifiClientMac, kWifiMac)
                           .ipv4(kWifiClient, kServer)
                           .tcp(40000, 80)
                           .payload(20)
                           .build();
      ASSERT_EQ(h->send(kWifi, in), "modem");
    }
  }
  Traffic of(conf::Roaming r) {
    const auto& b = stats.ledger().buckets();
    const auto it = b.find({ip(kWifiClient.c_str()), "modem", "passenger", r});
    return it == b.end() ? Traffic{} : it->second;
  }

  FakeKernel kernel;
  std::unique_ptr<EngineHarness> h;
  std::unique_ptr<TopologySync> sync;
  std::unique_ptr<FlowManager> fm;
  TrafficStats stats;  // its kernel counters are not installed: the fast path's share only
};

TEST_F(TrafficStatsTest, FastPathFlowsCountedLiveAndAtRemoval) {
  CtEntry e = masqueraded_tcp();
  e.mark = 0x11000;  // the passenger's session, an uplink mark
  fm->upsert(e);
  send_up(3);
  stats.sample(*fm);
  EXPECT_EQ(of(conf::Roaming::home), (Traffic{3, 180, 0, 0}));
  // The roaming flip: what follows goes to the roaming bucket, what came before stays.
  stats.set_scene(scene(conf::Roaming::national));
  send_up(2);
  fm->destroyed(e);  // removed between two samples: its last reading is counted
  stats.sample(*fm);
  EXPECT_EQ(of(conf::Roaming::home), (Traffic{3, 180, 0, 0}));
  EXPECT_EQ(of(conf::Roaming::national), (Traffic{2, 120, 0, 0}));
  const auto clients = stats.clients_json([](const IpAddr&) {
    return ClientPlace{"02:00:00:50:00:10", "wifi0"};
  });
  ASSERT_EQ(clients.size(), 1u);
  EXPECT_EQ(clients[0]["up_bytes"], 300);
  EXPECT_EQ(clients[0]["mac"], "02:00:00:50:00:10");
  EXPECT_EQ(clients[0]["traffic"].size(), 2u);
  const auto sessions = stats.sessions_json();
  ASSERT_EQ(sessions.size(), 1u);
  EXPECT_EQ(sessions[0]["session"], "passenger");
  EXPECT_EQ(sessions[0]["up_packets"], 5);
}

TEST_F(TrafficStatsTest, AFlowWithoutASessionMarkIsTheDefaultPolicys) {
  fm->upsert(masqueraded_tcp());
  send_up(1);
  stats.sample(*fm);
  const auto sessions = stats.sessions_json();
  ASSERT_EQ(sessions.size(), 1u);
  EXPECT_TRUE(sessions[0]["session"].is_null());
  std::ostringstream m;
  stats.metrics(m);
  EXPECT_NE(m.str().find("tetherpath_session_ip_bytes_total{session=\"\",uplink=\"modem\","
                         "roaming=\"home\",direction=\"up\"} 60"),
            std::string::npos)
      << m.str();
}

}  // namespace
}  // namespace tp::test

namespace tp::test {
namespace {

conf::SessionConfig limited(const std::string& name, std::optional<uint64_t> warning,
                            std::optional<uint64_t> limit) {
  conf::SessionConfig s;
  s.name = name;
  s.warning_bytes = warning;
  s.limit_bytes = limit;
  return s;
}

TEST(SessionLimits, CountFromWhenSetThenWarnAndStopOnce) {
  SessionLimits l;
  EXPECT_TRUE(l.configure({limited("passenger", 2000, 3000), limited("free", {}, {})},
                          {{"passenger", 50000}})
                  .empty());
  EXPECT_TRUE(l.counting());
  EXPECT_FALSE(l.view("free")) << "no warning, no limit: nothing to count";
  auto events = l.charge({{"passenger", 52500}});
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].event, "warning_reached");
  EXPECT_EQ(events[0].used, 2500u);
  events = l.charge({{"passenger", 53100}});
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].event, "limit_reached");
  EXPECT_EQ(l.reached(), std::set<std::string>{"passenger"});
  EXPECT_FALSE(l.counting());
  EXPECT_TRUE(l.charge({{"passenger", 60000}}).empty()) << "once each";
  // The same thresholds again (another session changed): usage and state stay.
  l.configure({limited("passenger", 2000, 3000)}, {{"passenger", 60000}});
  EXPECT_EQ(l.view("passenger")->used, 10000u);
  EXPECT_TRUE(l.view("passenger")->reached);
  // A new limit: counting starts again, the session may forward.
  l.configure({limited("passenger", 2000, 1000000)}, {{"passenger", 60000}});
  EXPECT_TRUE(l.reached().empty());
  EXPECT_EQ(l.view("passenger")->used, 0u);
}

// A policy update reads every counter only when a quota starts counting from it.
TEST(SessionLimits, RecountsOnlyWhenAThresholdIsNewOrChanged) {
  SessionLimits l;
  EXPECT_FALSE(l.recounts({limited("free", {}, {})})) << "no threshold, nothing to count";
  EXPECT_TRUE(l.recounts({limited("passenger", 2000, 3000)}));
  l.configure({limited("passenger", 2000, 3000)}, {});
  EXPECT_FALSE(l.recounts({limited("passenger", 2000, 3000), limited("free", {}, {})}));
  EXPECT_TRUE(l.recounts({limited("passenger", 2000, 4000)}));
  EXPECT_TRUE(l.recounts({limited("passenger", {}, 3000)}));
  EXPECT_FALSE(l.recounts({})) << "a removed quota has nothing left to count";
}

TEST(SessionLimits, ALimitOfZeroIsReachedAtOnce) {
  SessionLimits l;
  const auto events = l.configure({limited("kid", {}, 0)}, {});
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].event, "limit_reached");
}

TEST(SessionLimits, UsageSurvivesARestartWhileTheThresholdsStay) {
  SessionLimits before;
  before.configure({limited("passenger", 2000, 3000), limited("rear", {}, 500)}, {});
  before.charge({{"passenger", 2500}, {"rear", 100}});
  const nlohmann::json saved = before.usage();
  SessionLimits after;
  after.configure({limited("passenger", 2000, 3000), limited("rear", {}, 900)}, {});
  const auto ignored = after.restore(saved);
  ASSERT_EQ(ignored.size(), 1u);
  EXPECT_NE(ignored[0].find("rear: its warning or limit changed"), std::string::npos);
  after.charge({{"passenger", 600}});
  EXPECT_EQ(after.view("passenger")->used, 3100u);
  EXPECT_TRUE(after.view("passenger")->warned);
  EXPECT_EQ(after.reached(), std::set<std::string>{"passenger"});
  EXPECT_EQ(after.restore(nlohmann::json::array()).size(), 1u);
  EXPECT_EQ(after.restore({{"passenger", {{"used", "lots"}}}}).size(), 1u);
}

}  // namespace
}  // namespace tp::test
