// The management API's semantics (the offload HAL's rules): state before arguments, strict
// argument checks, statistics and limits. The daemon side is a recording host; the namespace lab
// (test_api.sh) runs the same operations against the real daemon.
#include <gtest/gtest.h>

#include <set>

#include "config.hpp"
#include "offload_api.hpp"

namespace tp {
namespace {

// In-process calls in these tests are the integrator's: every right.
const api::Caller kRoot = api::Caller::root();

struct RecordingHost : OffloadHost {
  void start_offload() override { ++starts; }
  void stop_offload() override { ++stops; }
  void roles_changed() override { ++role_changes; }
  ByteCounts forwarded_bytes(uint8_t port) override { return forwarded[port]; }
  void arm_limit(uint8_t port, uint64_t limit, uint64_t u) override {
    armed[port] = limit;
    used[port] = u;
  }
  void disarm_limit(uint8_t port) override { armed.erase(port); }
  uint64_t limit_used(uint8_t port) override { return used[port]; }
  Json describe(const std::string& what) override { return Json{{"what", what}}; }
  std::string reload() override { return reload_error; }
  bool kernel_has_interface(const std::string& iface) override {
    return kernel_links.count(iface) > 0;
  }
  Json shutdown_prepare(uint32_t deadline_ms) override {
    deadlines.push_back(deadline_ms);
    return Json{{"ready", true}};
  }
  void shutdown_cancel() override { ++cancels; }
  Json set_vehicle_state(const std::string& what, bool value) override {
    vehicle.emplace_back(what, value);
    return Json{{"garage", value}};
  }
  Json suspend() override { return Json{{"took_ms", 1}}; }
  Json apply_signed_config(const Json& bundle) override {
    bundles.push_back(bundle);
    return Json{{"serial", 1}};
  }
  Json restore_config() override { return Json{{"restored", ++restores}}; }
  std::string set_interface_enabled(uint8_t port, bool enabled) override {
    switched.emplace_back(port, enabled);
    return interface_error;
  }

  int starts = 0, stops = 0, role_changes = 0;
  std::map<uint8_t, ByteCounts> forwarded;
  std::map<uint8_t, uint64_t> armed, used;
  std::string reload_error, interface_error;
  std::vector<std::pair<uint8_t, bool>> switched;
  std::vector<uint32_t> deadlines;
  int cancels = 0;
  std::vector<std::pair<std::string, bool>> vehicle;
  std::vector<Json> bundles;
  int restores = 0;
  std::set<std::string> kernel_links{"modem0", "wifi0", "usb0", "wlan1"};
};

// modem0 (0) upstream, wifi0 (1) and usb0 (2) downstream.
conf::Config lab_config(const std::string& extra = "") {
  return conf::load_string(
      "ports:\n"
      "  - {name: modem0, role: upstream, device: a}\n"
      "  - {name: wifi0, role: downstream, device: b}\n"
      "  - {name: usb0, role: downstream, device: c}\n"
      "offload: {enabled: false}\n" +
          extra,
      "test.yaml");
}

// The same, with offload enabled at start, as the daemon applies a configuration file.
conf::Config enabled_config(const std::string& extra) {
  conf::Config c = lab_config(extra);
  c.offload.enabled = true;
  return c;
}

class OffloadApiTest : public ::testing::Test {
 protected:
  OffloadApiTest() : api(lab_config(), host) {
    api.on_event = [this](const Json& e) { events.push_back(e); };
  }

  Json call(const std::string& json) { return api.handle(Json::parse(json), kRoot); }
  // The error code, or "ok".
  std::string code(const std::string& json) {
    const Json r = call(json);
    return r.value("ok", false) ? "ok" : r.value("error", "?");
  }
  void start() { ASSERT_EQ(code(R"({"op":"init"})"), "ok"); }

  RecordingHost host;
  OffloadApi api;
  std::vector<Json> events;
};

TEST_F(OffloadApiTest, EverythingButStatisticsNeedsInitAndStateComesFirst) {
  for (const char* req :
       {R"({"op":"stop"})", R"({"op":"set_local_prefixes","prefixes":[]})",
        R"({"op":"set_upstream"})", R"({"op":"set_upstream","iface":"nope"})",
        R"({"op":"add_downstream","iface":"","prefix":"bad"})", R"({"op":"remove_downstream"})",
        R"({"op":"set_data_warning_and_limit","iface":"x","limit":-1})"})
    EXPECT_EQ(code(req), "illegal_state") << req;
  const Json stats = call(R"({"op":"get_forwarded_stats","iface":"modem0"})");
  EXPECT_EQ(stats["ok"], true);
  EXPECT_EQ(stats["rx_bytes"], 0);
  EXPECT_EQ(stats["tx_bytes"], 0);
  EXPECT_EQ(code(R"({"op":"status"})"), "ok");
  EXPECT_EQ(host.starts, 0);
}

TEST_F(OffloadApiTest, InterfaceControlNeedsAPortAndABooleanNotOffload) {
  // Offload is not started: interface control is the box's, it answers all the same.
  EXPECT_EQ(code(R"({"op":"set_interface_enabled","iface":"wifi0","enabled":false})"), "ok");
  EXPECT_EQ(code(R"({"op":"set_interface_enabled","iface":"eth9","enabled":false})"),
            "illegal_argument");  // not one of the ports
  EXPECT_EQ(code(R"({"op":"set_interface_enabled","iface":"wifi0"})"), "illegal_argument");
  EXPECT_EQ(code(R"({"op":"set_interface_enabled","iface":"wifi0","enabled":"no"})"),
            "illegal_argument");
  EXPECT_EQ(code(R"({"op":"set_interface_enabled","enabled":true})"), "illegal_argument");
  EXPECT_EQ(host.switched, (std::vector<std::pair<uint8_t, bool>>{{1, false}}));
  host.interface_error = "wifi0: Operation not permitted";
  const Json r = call(R"({"op":"set_interface_enabled","iface":"wifi0","enabled":true})");
  EXPECT_EQ(r["error"], "interface_error");
  EXPECT_EQ(r["message"], "wifi0: Operation not permitted");
  api::Caller reader{4242, 4242, 7, false, false};
  EXPECT_EQ(
      api.handle(Json::parse(R"({"op":"set_interface_enabled","iface":"wifi0","enabled":true})"),
                 reader)["error"],
      "permission_denied");
  EXPECT_EQ(host.switched.size(), 2u);  // the reader's call never reached the host
}

TEST_F(OffloadApiTest, ShutdownPrepareNeedsADeadlineNotOffload) {
  EXPECT_EQ(code(R"({"op":"shutdown_prepare"})"), "illegal_argument");
  EXPECT_EQ(code(R"({"op":"shutdown_prepare","deadline_ms":null})"), "illegal_argument");
  EXPECT_EQ(code(R"({"op":"shutdown_prepare","deadline_ms":0})"), "illegal_argument");
  EXPECT_EQ(code(R"({"op":"shutdown_prepare","deadline_ms":600001})"), "illegal_argument");
  EXPECT_EQ(code(R"({"op":"shutdown_prepare","deadline_ms":"2s"})"), "illegal_argument");
  EXPECT_TRUE(host.deadlines.empty());
  const Json r = call(R"({"op":"shutdown_prepare","deadline_ms":2000})");
  EXPECT_EQ(r["ok"], true);
  EXPECT_EQ(r["ready"], true);  // the host's details, in the reply
  EXPECT_EQ(host.deadlines, (std::vector<uint32_t>{2000}));
  EXPECT_EQ(code(R"({"op":"shutdown_cancel"})"), "ok");
  EXPECT_EQ(host.cancels, 1);
  api::Caller reader{4242, 4242, 7, false, false};
  EXPECT_EQ(api.handle(Json{{"op", "shutdown_prepare"}, {"deadline_ms", 5}}, reader)["error"],
            "permission_denied");
  EXPECT_EQ(host.deadlines.size(), 1u);
}

TEST_F(OffloadApiTest, VehicleStatesNeedTheirWordAndControl) {
  EXPECT_EQ(code(R"({"op":"set_vehicle_in_use"})"), "illegal_argument");
  EXPECT_EQ(code(R"({"op":"set_vehicle_in_use","in_use":"yes"})"), "illegal_argument");
  EXPECT_EQ(code(R"({"op":"set_garage","active":null})"), "illegal_argument");
  EXPECT_TRUE(host.vehicle.empty());
  EXPECT_EQ(call(R"({"op":"set_garage","active":true})")["garage"], true);
  EXPECT_EQ(code(R"({"op":"set_vehicle_in_use","in_use":false})"), "ok");
  EXPECT_EQ(host.vehicle,
            (std::vector<std::pair<std::string, bool>>{{"garage", true}, {"in_use", false}}));
  EXPECT_EQ(call(R"({"op":"suspend"})")["took_ms"], 1);
  EXPECT_EQ(code(R"({"op":"resume"})"), "unsupported");  // the host's own refusal, passed on
  api::Caller reader{4242, 4242, 7, false, false};
  EXPECT_EQ(api.handle(Json{{"op", "vehicle"}}, reader)["what"], "vehicle");  // a read
  EXPECT_EQ(api.handle(Json{{"op", "set_garage"}, {"active", false}}, reader)["error"],
            "permission_denied");
  EXPECT_EQ(api.handle(Json{{"op", "suspend"}}, reader)["error"], "permission_denied");
  EXPECT_EQ(host.vehicle.size(), 2u);
}

// Signed configurations change what runs: a control operation, in any offload state.
TEST_F(OffloadApiTest, SignedConfigIsForControlCallers) {
  EXPECT_EQ(code(R"({"op":"apply_signed_config"})"), "illegal_argument");
  EXPECT_EQ(call(R"({"op":"apply_signed_config","bundle":"{}"})")["serial"], 1);
  EXPECT_EQ(call(R"({"op":"restore_config"})")["restored"], 1);
  api::Caller reader{4242, 4242, 7, false, false};
  for (const char* op : {"apply_signed_config", "restore_config"})
    EXPECT_EQ(api.handle(Json{{"op", op}, {"bundle", "{}"}}, reader)["error"], "permission_denied");
  EXPECT_EQ(host.bundles, (std::vector<Json>{"{}"}));
  EXPECT_EQ(host.restores, 1);
}

TEST_F(OffloadApiTest, InitOnceStopOnce) {
  start();
  EXPECT_EQ(host.starts, 1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["event"], "offload_started");
  EXPECT_EQ(code(R"({"op":"init"})"), "illegal_state");
  EXPECT_EQ(host.starts, 1);  // the second init changed nothing
  EXPECT_EQ(code(R"({"op":"stop"})"), "ok");
  EXPECT_EQ(host.stops, 1);
  EXPECT_EQ(code(R"({"op":"stop"})"), "illegal_state");
  EXPECT_EQ(code(R"({"op":"set_upstream","iface":"modem0","ipv4_addr":"100.64.0.2"})"),
            "illegal_state");
  start();  // and again
}

TEST_F(OffloadApiTest, LocalPrefixes) {
  start();
  EXPECT_EQ(code(R"({"op":"set_local_prefixes"})"), "illegal_argument");
  EXPECT_EQ(code(R"({"op":"set_local_prefixes","prefixes":[]})"), "illegal_argument");
  EXPECT_EQ(code(R"({"op":"set_local_prefixes","prefixes":["10.0.0.0/8","192.0.2/24"]})"),
            "illegal_argument");
  EXPECT_EQ(code(R"({"op":"set_local_prefixes","prefixes":["10.0.0.0/8", 5]})"),
            "illegal_argument");
  EXPECT_EQ(code(R"({"op":"set_local_prefixes","prefixes":"10.0.0.0/8"})"), "illegal_argument");
  EXPECT_TRUE(api.local_prefixes().empty());  // rejected calls changed nothing
  const int before = host.role_changes;
  EXPECT_EQ(code(R"({"op":"set_local_prefixes","prefixes":["10.0.0.0/8","fd00::/8"]})"), "ok");
  EXPECT_EQ(api.local_prefixes().size(), 2u);
  EXPECT_EQ(host.role_changes, before + 1);
  EXPECT_EQ(code(R"({"op":"set_local_prefixes","prefixes":["172.16.0.0/12"]})"), "ok");
  ASSERT_EQ(api.local_prefixes().size(), 1u);  // replaced, not appended
  EXPECT_EQ(api.local_prefixes()[0].str(), "172.16.0.0/12");
}

TEST_F(OffloadApiTest, Upstream) {
  start();
  for (
      const char* bad : {
          R"({"op":"set_upstream","ipv4_addr":"100.64.0.2"})",
          R"({"op":"set_upstream","iface":"","ipv4_addr":"100.64.0.2"})",
          R"({"op":"set_upstream","iface":"ppp9","ipv4_addr":"100.64.0.2"})",
          R"({"op":"set_upstream","iface":"wifi0","ipv4_addr":"192.168.50.1"})",
          R"({"op":"set_upstream","iface":"modem0"})",
          R"({"op":"set_upstream","iface":"modem0","ipv4_addr":"","ipv4_gateway":"","ipv6_gateways":[]})",
          R"({"op":"set_upstream","iface":"modem0","ipv4_addr":"192.0.2"})",
          R"({"op":"set_upstream","iface":"modem0","ipv4_addr":"2001:db8::2"})",
          R"({"op":"set_upstream","iface":"modem0","ipv4_gateway":"100.64.0.1 "})",
          R"({"op":"set_upstream","iface":"modem0","ipv6_gateways":["fe80::1","100.64.0.1"]})",
          R"({"op":"set_upstream","iface":"modem0","ipv6_gateways":"fe80::1"})",
          R"({"op":"set_upstream","iface":7,"ipv4_addr":"100.64.0.2"})",
      })
    EXPECT_EQ(code(bad), "illegal_argument") << bad;
  EXPECT_FALSE(api.roles()[0].upstream);
  EXPECT_EQ(code(R"({"op":"set_upstream","iface":"modem0","ipv4_addr":"100.64.0.2",
                     "ipv4_gateway":"100.64.0.1"})"),
            "ok");  // IPv4 only
  EXPECT_TRUE(api.roles()[0].upstream);
  EXPECT_EQ(code(R"({"op":"set_upstream","iface":"modem0","ipv6_gateways":["fe80::1"]})"),
            "ok");  // IPv6 only
  const Json s = call(R"({"op":"status"})");
  EXPECT_EQ(s["upstream"]["iface"], "modem0");
  EXPECT_EQ(s["upstream"]["ipv6_gateways"][0], "fe80::1");
  EXPECT_FALSE(s["upstream"].contains("ipv4_addr"));
}

// Android's OFFLOAD_STOPPED_UNSUPPORTED: the upstream moved to an interface the fast path has no
// port for. Accepted (the kernel routes through it), nothing offloaded, said by an event; an
// upstream port again brings support_available. A name the kernel does not know stays an error.
TEST_F(OffloadApiTest, UpstreamWithoutAFastPathPortIsUnsupported) {
  start();
  ASSERT_EQ(code(R"({"op":"set_upstream","iface":"modem0","ipv4_addr":"100.64.0.2"})"), "ok");
  events.clear();
  const int before = host.role_changes;
  EXPECT_EQ(code(R"({"op":"set_upstream","iface":"ppp9","ipv4_addr":"10.0.0.2"})"),
            "illegal_argument");
  EXPECT_EQ(code(R"({"op":"set_upstream","iface":"wlan1","ipv4_addr":"10.0.0"})"),
            "illegal_argument")
      << "its arguments are checked like any upstream's";
  EXPECT_TRUE(events.empty());
  EXPECT_TRUE(api.roles()[0].upstream);

  EXPECT_EQ(code(R"({"op":"set_upstream","iface":"wlan1","ipv4_addr":"10.0.0.2"})"), "ok");
  EXPECT_FALSE(api.roles()[0].upstream) << "no port is the upstream: every flow goes back";
  EXPECT_EQ(host.role_changes, before + 1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["event"], "offload_stopped_unsupported");
  EXPECT_EQ(events[0]["upstream"], "wlan1");
  Json s = call(R"({"op":"status"})");
  EXPECT_EQ(s["upstream"]["iface"], "wlan1");
  EXPECT_EQ(s["upstream"]["offloaded"], false);

  EXPECT_EQ(code(R"({"op":"set_upstream","iface":"modem0","ipv4_addr":"100.64.0.2"})"), "ok");
  EXPECT_TRUE(api.roles()[0].upstream);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1]["event"], "support_available");
  EXPECT_EQ(events[1]["upstream"], "modem0");
  s = call(R"({"op":"status"})");
  EXPECT_EQ(s["upstream"]["offloaded"], true);
  // Once supported, moving between upstream ports says nothing more.
  EXPECT_EQ(code(R"({"op":"set_upstream","iface":"modem0","ipv4_addr":"100.64.0.3"})"), "ok");
  EXPECT_EQ(events.size(), 2u);
}

TEST_F(OffloadApiTest, Downstreams) {
  start();
  for (const char* bad : {
           R"({"op":"add_downstream","iface":"wifi0","prefix":"192.0.2/24"})",
           R"({"op":"add_downstream","iface":"wifi0","prefix":"2001:db8/64"})",
           R"({"op":"add_downstream","iface":"wifi0","prefix":""})",
           R"({"op":"add_downstream","iface":"wifi0"})",
           R"({"op":"add_downstream","iface":"","prefix":"192.168.50.0/24"})",
           R"({"op":"add_downstream","iface":"wlan7","prefix":"192.168.50.0/24"})",
           R"({"op":"add_downstream","iface":"modem0","prefix":"100.64.0.0/24"})",
           R"({"op":"remove_downstream","iface":"wifi0","prefix":"192.0.2/24"})",
       })
    EXPECT_EQ(code(bad), "illegal_argument") << bad;
  EXPECT_EQ(code(R"({"op":"add_downstream","iface":"wifi0","prefix":"192.168.50.0/24"})"), "ok");
  EXPECT_EQ(code(R"({"op":"add_downstream","iface":"wifi0","prefix":"2001:db8:50::/64"})"), "ok");
  EXPECT_EQ(code(R"({"op":"add_downstream","iface":"wifi0","prefix":"2001:db8:50::/64"})"), "ok");
  EXPECT_EQ(api.roles()[1].prefixes.size(), 2u);  // adding twice is one downstream
  EXPECT_EQ(code(R"({"op":"remove_downstream","iface":"wifi0","prefix":"192.168.50.0/24"})"), "ok");
  ASSERT_EQ(api.roles()[1].prefixes.size(), 1u);
  EXPECT_EQ(api.roles()[1].prefixes[0].str(), "2001:db8:50::/64");
  EXPECT_TRUE(api.roles()[2].prefixes.empty());
}

TEST_F(OffloadApiTest, ForwardedStatsAreDeltasAndNeverFail) {
  start();
  host.forwarded[0] = {1000, 200};
  Json r = call(R"({"op":"get_forwarded_stats","iface":"modem0"})");
  EXPECT_EQ(r["rx_bytes"], 1000);
  EXPECT_EQ(r["tx_bytes"], 200);
  r = call(R"({"op":"get_forwarded_stats","iface":"modem0"})");
  EXPECT_EQ(r["rx_bytes"], 0);  // reset by the previous call
  host.forwarded[0] = {1500, 260};
  r = call(R"({"op":"get_forwarded_stats","iface":"modem0"})");
  EXPECT_EQ(r["rx_bytes"], 500);
  EXPECT_EQ(r["tx_bytes"], 60);
  for (const char* odd :
       {R"({"op":"get_forwarded_stats","iface":"nope"})", R"({"op":"get_forwarded_stats"})",
        R"({"op":"get_forwarded_stats","iface":3})"}) {
    r = call(odd);
    EXPECT_EQ(r["ok"], true) << odd;
    EXPECT_EQ(r["rx_bytes"], 0) << odd;
  }
  // stop resets statistics: what was forwarded before it is not reported after the next init.
  host.forwarded[0] = {2000, 300};
  ASSERT_EQ(code(R"({"op":"stop"})"), "ok");
  start();
  host.forwarded[0] = {2100, 300};
  r = call(R"({"op":"get_forwarded_stats","iface":"modem0"})");
  EXPECT_EQ(r["rx_bytes"], 100);
}

TEST_F(OffloadApiTest, LimitsWarnThenStopOffloadingOnce) {
  start();
  for (const char* bad : {
           R"({"op":"set_data_warning_and_limit","iface":"modem0","warning":-1,"limit":10})",
           R"({"op":"set_data_warning_and_limit","iface":"modem0","warning":1,"limit":-10})",
           R"({"op":"set_data_warning_and_limit","iface":"modem0","warning":1.5,"limit":10})",
           R"({"op":"set_data_warning_and_limit","iface":"modem0","warning":"1","limit":10})",
           R"({"op":"set_data_warning_and_limit","iface":"modem0","limit":10})",
           R"({"op":"set_data_warning_and_limit","iface":"wifi0","warning":1,"limit":10})",
           R"({"op":"set_data_warning_and_limit","iface":"","warning":1,"limit":10})",
       })
    EXPECT_EQ(code(bad), "illegal_argument") << bad;
  EXPECT_TRUE(host.armed.empty());
  events.clear();
  ASSERT_EQ(
      code(R"({"op":"set_data_warning_and_limit","iface":"modem0","warning":100,"limit":300})"),
      "ok");
  EXPECT_EQ(host.armed[0], 300u);
  EXPECT_EQ(host.used[0], 0u);  // counting starts at the call
  host.used[0] = 99;
  api.poll();
  EXPECT_TRUE(events.empty());
  host.used[0] = 150;
  api.poll();
  api.poll();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["event"], "warning_reached");
  EXPECT_EQ(events[0]["upstream"], "modem0");
  EXPECT_FALSE(api.roles()[0].limited);
  const int before = host.role_changes;
  host.used[0] = 310;
  api.poll();
  api.poll();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1]["event"], "limit_reached");
  EXPECT_TRUE(api.roles()[0].limited);
  EXPECT_EQ(host.role_changes, before + 1);  // flows through modem0 go back to the kernel

  // A new limit counts from zero and lifts the block.
  ASSERT_EQ(
      code(R"({"op":"set_data_warning_and_limit","iface":"modem0","warning":900,"limit":500})"),
      "ok");  // a warning above the limit is allowed
  EXPECT_FALSE(api.roles()[0].limited);
  EXPECT_EQ(host.used[0], 0u);
  // Zero means "now".
  ASSERT_EQ(code(R"({"op":"set_data_warning_and_limit","iface":"modem0","warning":0,"limit":0})"),
            "ok");
  EXPECT_TRUE(api.roles()[0].limited);
  EXPECT_EQ(events.back()["event"], "limit_reached");
  // stop forgets limits.
  ASSERT_EQ(code(R"({"op":"stop"})"), "ok");
  EXPECT_TRUE(host.armed.empty());
  EXPECT_FALSE(api.roles()[0].limited);
}

TEST_F(OffloadApiTest, UsageSurvivesARestartWithoutRepeatingEvents) {
  start();
  ASSERT_EQ(
      code(R"({"op":"set_data_warning_and_limit","iface":"modem0","warning":10,"limit":1000})"),
      "ok");
  host.used[0] = 20;
  api.poll();
  ASSERT_EQ(events.back()["event"], "warning_reached");
  const Json saved = Json::parse(api.usage().dump());

  RecordingHost host2;
  OffloadApi api2(lab_config(), host2);
  std::vector<Json> events2;
  api2.on_event = [&](const Json& e) { events2.push_back(e); };
  api2.handle(Json{{"op", "init"}}, kRoot);
  events2.clear();
  api2.restore_usage(saved);
  EXPECT_EQ(host2.armed[0], 1000u);
  EXPECT_EQ(host2.used[0], 20u);  // counting resumes where it was
  api2.poll();
  EXPECT_TRUE(events2.empty());
  host2.used[0] = 1000;
  api2.poll();
  ASSERT_EQ(events2.size(), 1u);
  EXPECT_EQ(events2[0]["event"], "limit_reached");
}

// C parsers stop at a NUL: "10.0.0.0\0/8" must not pass as 10.0.0.0/8, nor "wifi0\0" as a name.
TEST_F(OffloadApiTest, ControlCharactersInNamesAddressesAndPrefixesAreRefused) {
  start();
  auto with = [](Json req) { return req; };
  const std::string nul("\0", 1);
  for (const Json& bad : {
           with({{"op", "set_local_prefixes"}, {"prefixes", {"10.0.0.0" + nul + "/8"}}}),
           with({{"op", "set_local_prefixes"}, {"prefixes", {"10.0.0.0/8" + nul}}}),
           with({{"op", "set_upstream"}, {"iface", "modem0" + nul}, {"ipv4_addr", "100.64.0.2"}}),
           with({{"op", "set_upstream"}, {"iface", "wifi0" + nul}, {"ipv4_addr", "100.64.0.2"}}),
           with({{"op", "set_upstream"}, {"iface", "modem0"}, {"ipv4_addr", "192.0.2.2" + nul}}),
           with({{"op", "set_upstream"}, {"iface", "modem0"}, {"ipv4_addr", "192.0.2.2\n"}}),
           with({{"op", "set_upstream"}, {"iface", "modem0"}, {"ipv6_gateways", {"fe80::1\t"}}}),
           with({{"op", "add_downstream"}, {"iface", "wifi0"}, {"prefix", "10.1.0.0/16" + nul}}),
           with({{"op", "add_downstream"}, {"iface", "wifi0\x7f"}, {"prefix", "10.1.0.0/16"}}),
           with({{"op", "remove_downstream"}, {"iface", "wifi0" + nul}, {"prefix", "10.1.0.0/16"}}),
           with({{"op", "set_data_warning_and_limit"},
                 {"iface", "modem0" + nul},
                 {"warning", 1},
                 {"limit", 2}}),
       }) {
    const Json r = api.handle(bad, kRoot);
    EXPECT_EQ(r["error"], "illegal_argument") << bad.dump();
  }
  EXPECT_TRUE(api.local_prefixes().empty());
  EXPECT_FALSE(api.roles()[0].upstream);
  EXPECT_TRUE(host.armed.empty());
}

// Android's framework clears the upstream with ("", "0.0.0.0", "0.0.0.0", []) and ignores the
// result; VTS wants an empty iface refused when no upstream was set. Both hold.
TEST_F(OffloadApiTest, AnEmptyUpstreamClearsOneThatWasSet) {
  start();
  const char* clear =
      R"({"op":"set_upstream","iface":"","ipv4_addr":"0.0.0.0","ipv4_gateway":"0.0.0.0","ipv6_gateways":[]})";
  EXPECT_EQ(code(clear), "illegal_argument");  // none set yet
  ASSERT_EQ(code(R"({"op":"set_upstream","iface":"modem0","ipv4_addr":"100.64.0.2"})"), "ok");
  const int before = host.role_changes;
  EXPECT_EQ(code(clear), "ok");
  EXPECT_FALSE(api.roles()[0].upstream);
  EXPECT_EQ(host.role_changes, before + 1);  // its flows go back to the kernel
  EXPECT_TRUE(call(R"({"op":"status"})")["upstream"].is_null());
  EXPECT_EQ(code(clear), "ok");  // clearing again is harmless
  // An unsupported upstream is cleared the same way.
  ASSERT_EQ(code(R"({"op":"set_upstream","iface":"wlan1","ipv4_addr":"10.0.0.2"})"), "ok");
  EXPECT_EQ(code(clear), "ok");
  EXPECT_TRUE(call(R"({"op":"status"})")["upstream"].is_null());
}

TEST_F(OffloadApiTest, StopLeavesNothingForTheNextInit) {
  start();
  ASSERT_EQ(code(R"({"op":"set_upstream","iface":"modem0","ipv4_addr":"100.64.0.2"})"), "ok");
  ASSERT_EQ(code(R"({"op":"add_downstream","iface":"wifi0","prefix":"192.168.50.0/24"})"), "ok");
  ASSERT_EQ(code(R"({"op":"set_local_prefixes","prefixes":["10.0.0.0/8"]})"), "ok");
  ASSERT_EQ(code(R"({"op":"set_data_warning_and_limit","iface":"wlan1","warning":1,"limit":2})"),
            "ok");
  ASSERT_EQ(code(R"({"op":"stop"})"), "ok");
  start();
  EXPECT_FALSE(api.roles()[0].upstream);
  EXPECT_TRUE(api.roles()[1].prefixes.empty());
  EXPECT_TRUE(api.local_prefixes().empty());
  const Json s = call(R"({"op":"status"})");
  EXPECT_TRUE(s["upstream"].is_null());
  EXPECT_TRUE(s["downstreams"].empty());
  EXPECT_TRUE(s["limits"].empty());
  EXPECT_EQ(code(R"({"op":"set_upstream","iface":""})"), "illegal_argument");  // none set since
}

// The HAL: after OFFLOAD_STOPPED_LIMIT_REACHED the client resumes by programming the upstream
// again (the framework then sends a new quota).
TEST_F(OffloadApiTest, SetUpstreamAfterLimitReachedResumes) {
  start();
  ASSERT_EQ(code(R"({"op":"set_upstream","iface":"modem0","ipv4_addr":"100.64.0.2"})"), "ok");
  ASSERT_EQ(code(R"({"op":"set_data_warning_and_limit","iface":"modem0","warning":5,"limit":10})"),
            "ok");
  host.used[0] = 10;
  api.poll();
  ASSERT_TRUE(api.roles()[0].limited);
  ASSERT_EQ(code(R"({"op":"set_upstream","iface":"modem0","ipv4_addr":"100.64.0.2"})"), "ok");
  EXPECT_FALSE(api.roles()[0].limited);
  EXPECT_EQ(host.armed.count(0), 0u);
  EXPECT_TRUE(api.usage().empty());
  // A limit not reached is not touched by set_upstream.
  ASSERT_EQ(code(R"({"op":"set_data_warning_and_limit","iface":"modem0","warning":5,"limit":99})"),
            "ok");
  ASSERT_EQ(code(R"({"op":"set_upstream","iface":"modem0","ipv4_addr":"100.64.0.3"})"), "ok");
  EXPECT_EQ(host.armed[0], 99u);
}

// Refusing a limit makes Android's framework stop all offload; one on an upstream the fast path
// does not carry is accepted, kept and shown as not enforced.
TEST_F(OffloadApiTest, LimitOnAnUpstreamWithoutAFastPathPortIsKept) {
  start();
  const Json r =
      call(R"({"op":"set_data_warning_and_limit","iface":"wlan1","warning":100,"limit":200})");
  EXPECT_EQ(r["ok"], true);
  EXPECT_EQ(r["enforced"], false);
  EXPECT_TRUE(host.armed.empty());
  const Json s = call(R"({"op":"status"})");
  ASSERT_EQ(s["limits"].size(), 1u);
  EXPECT_EQ(s["limits"][0]["iface"], "wlan1");
  EXPECT_EQ(s["limits"][0]["limit"], 200u);
  EXPECT_EQ(s["limits"][0]["enforced"], false);
  EXPECT_EQ(code(R"({"op":"set_data_warning_and_limit","iface":"ppp9","warning":1,"limit":2})"),
            "illegal_argument");  // no such interface
}

TEST_F(OffloadApiTest, MistypedUsageFieldsAreIgnoredNotFatal) {
  start();
  const Json saved = Json::parse(R"({
    "modem0": {"warning": "lots", "limit": 1000, "used": "20", "limit_reached": 1},
    "wifi0": {"limit": 5},
    "ghost0": {"limit": 5}})");
  const auto ignored = api.restore_usage(saved);
  EXPECT_EQ(ignored.size(), 5u);  // warning, used, limit_reached; wifi0; ghost0
  EXPECT_EQ(host.armed[0], 1000u);
  EXPECT_EQ(host.used[0], 0u);
  EXPECT_EQ(api.restore_usage(Json::array()).size(), 1u);
}

TEST_F(OffloadApiTest, MalformedRequestsGetErrors) {
  EXPECT_EQ(api.handle(Json::array(), kRoot)["error"], "illegal_argument");
  EXPECT_EQ(api.handle(Json{{"no_op", 1}}, kRoot)["error"], "illegal_argument");
  EXPECT_EQ(api.handle(Json{{"op", 5}}, kRoot)["error"], "illegal_argument");
  EXPECT_EQ(code(R"({"op":"teleport"})"), "unknown_op");
  host.reload_error = "x.yaml:3:1: ports cannot change";
  const Json r = call(R"({"op":"reload"})");
  EXPECT_EQ(r["error"], "reload_failed");
  EXPECT_EQ(r["message"], host.reload_error);
}

TEST(OffloadApiConfig, StartAppliesTheConfigAndReloadOnlyWhatChanged) {
  const std::string base =
      "upstream: {iface: modem0, ipv4_addr: 100.64.0.2}\n"
      "downstreams: [{iface: wifi0, prefix: 192.168.50.0/24}]\n";
  const conf::Config cfg =
      enabled_config(base + "limits: {upstreams: [{iface: modem0, limit_bytes: 50}]}\n");
  RecordingHost host;
  OffloadApi api(cfg, host);
  api.apply_config(cfg, nullptr);
  EXPECT_TRUE(api.started());
  EXPECT_EQ(host.starts, 1);
  EXPECT_TRUE(api.roles()[0].upstream);
  EXPECT_EQ(api.roles()[1].prefixes.size(), 1u);
  EXPECT_EQ(host.armed[0], 50u);

  // The connection manager adds a downstream; a reload that only changes the local prefixes
  // keeps it, and keeps counting against the unchanged limit.
  api.handle(Json{{"op", "add_downstream"}, {"iface", "usb0"}, {"prefix", "192.168.60.0/24"}},
             kRoot);
  host.used[0] = 7;
  conf::Config next = cfg;
  next.local_prefixes = {*Prefix::parse("10.0.0.0/8")};
  api.apply_config(next, &cfg);
  EXPECT_EQ(api.roles()[2].prefixes.size(), 1u);
  EXPECT_EQ(api.local_prefixes().size(), 1u);
  EXPECT_EQ(host.used[0], 7u);
  EXPECT_EQ(host.starts, 1);
  // A changed threshold keeps the bytes already used: the billing period did not restart.
  conf::Config third = next;
  third.limits.upstreams[0].limit_bytes = 80;
  third.limits.upstreams[0].warning_bytes = 60;
  api.apply_config(third, &next);
  EXPECT_EQ(host.armed[0], 80u);
  EXPECT_EQ(host.used[0], 7u);
  EXPECT_EQ(api.usage()["modem0"]["warning"], 60u);
  // A limit removed from the file is disarmed.
  conf::Config fourth = third;
  fourth.limits.upstreams.clear();
  api.apply_config(fourth, &third);
  EXPECT_EQ(host.armed.count(0), 0u);
  EXPECT_TRUE(api.usage().empty());
}

// A reload that lowers a limit below what is already used reaches it at once (one event); one
// that raises it above lifts the block and does not resend the warning already sent.
TEST(OffloadApiConfig, ReloadedThresholdsKeepUsageAndEvents) {
  const conf::Config cfg = enabled_config(
      "upstream: {iface: modem0, ipv4_addr: 100.64.0.2}\n"
      "limits: {upstreams: [{iface: modem0, warning_bytes: 10, limit_bytes: 100}]}\n");
  RecordingHost host;
  OffloadApi api(cfg, host);
  std::vector<std::string> events;
  api.on_event = [&](const Json& e) { events.push_back(e["event"]); };
  api.apply_config(cfg, nullptr);
  events.clear();
  host.used[0] = 50;
  api.poll();
  EXPECT_EQ(events, std::vector<std::string>{"warning_reached"});
  conf::Config lower = cfg;
  lower.limits.upstreams[0].limit_bytes = 40;
  api.apply_config(lower, &cfg);
  EXPECT_EQ(events, (std::vector<std::string>{"warning_reached", "limit_reached"}));
  EXPECT_TRUE(api.roles()[0].limited);
  conf::Config higher = lower;
  higher.limits.upstreams[0].limit_bytes = 1000;
  api.apply_config(higher, &lower);
  EXPECT_FALSE(api.roles()[0].limited);
  EXPECT_EQ(host.used[0], 50u);
  EXPECT_EQ(events.size(), 2u);
}

// Offload turned off and on again by reloads starts from the file, as at start.
TEST(OffloadApiConfig, ReEnabledOffloadStartsFromTheFile) {
  const conf::Config cfg = enabled_config(
      "upstream: {iface: modem0, ipv4_addr: 100.64.0.2}\n"
      "downstreams: [{iface: wifi0, prefix: 192.168.50.0/24}]\n");
  RecordingHost host;
  OffloadApi api(cfg, host);
  api.apply_config(cfg, nullptr);
  conf::Config off = cfg;
  off.offload.enabled = false;
  api.apply_config(off, &cfg);
  EXPECT_FALSE(api.started());
  EXPECT_FALSE(api.roles()[0].upstream);
  api.apply_config(cfg, &off);
  EXPECT_TRUE(api.started());
  EXPECT_TRUE(api.roles()[0].upstream);
  EXPECT_EQ(api.roles()[1].prefixes.size(), 1u);
}

}  // namespace
}  // namespace tp

namespace tp {
namespace {

// Multi-uplink mode: modem0 (0) and phone0 (1) upstream ports, wifi0 (2) downstream.
class UplinksTest : public ::testing::Test {
 protected:
  UplinksTest()
      : api(conf::load_string("ports:\n"
                              "  - {name: modem0, role: upstream, device: a}\n"
                              "  - {name: phone0, role: upstream, device: b}\n"
                              "  - {name: wifi0, role: downstream, device: c}\n"
                              "offload: {enabled: false}\n",
                              "test.yaml"),
            host) {
    api.on_event = [this](const Json& e) { events.push_back(e); };
  }
  std::string code(const std::string& json) {
    const Json r = api.handle(Json::parse(json), kRoot);
    return r.value("ok", false) ? "ok" : r.value("error", "?") + ": " + r.value("message", "");
  }
  Json uplinks() { return api.handle(Json::parse(R"({"op":"status"})"), kRoot)["uplinks"]; }

  RecordingHost host;
  OffloadApi api;
  std::vector<Json> events;
};

TEST_F(UplinksTest, BadCallsChangeNothing) {
  EXPECT_EQ(code(R"({"op":"add_uplink","name":"modem","iface":"modem0"})").substr(0, 13),
            "illegal_state");
  ASSERT_EQ(code(R"({"op":"init"})"), "ok");
  ASSERT_EQ(code(R"({"op":"add_uplink","name":"modem","iface":"modem0"})"), "ok");
  const int changes = host.role_changes;
  for (const char* bad : {
           R"({"op":"add_uplink","iface":"phone0"})",
           R"({"op":"add_uplink","name":"a b","iface":"phone0"})",
           R"({"op":"add_uplink","name":"modem","iface":"phone0"})",
           R"({"op":"add_uplink","name":"phone","iface":"modem0"})",
           R"({"op":"add_uplink","name":"phone","iface":"wifi0"})",
           R"({"op":"add_uplink","name":"phone","iface":"ppp9"})",
           R"({"op":"add_uplink","name":"phone"})",
           R"({"op":"add_uplink","name":"phone","iface":"phone0","kind":"satellite"})",
           R"({"op":"add_uplink","name":"phone","iface":"phone0","roaming":"abroad"})",
           R"({"op":"add_uplink","name":"phone","iface":"phone0","weight":0})",
           R"({"op":"add_uplink","name":"phone","iface":"phone0","metric":-1})",
           R"({"op":"add_uplink","name":"phone","iface":"phone0","metered":"yes"})",
           R"({"op":"add_uplink","name":"phone","iface":"phone0","ipv4_addr":"192.0.2"})",
           R"({"op":"add_uplink","name":"phone","iface":"phone0","ipv6_gateways":["10.0.0.1"]})",
           R"({"op":"add_uplink","name":"phone","iface":"phone0","track":"1.1.1.1"})",
           R"({"op":"add_uplink","name":"phone","iface":"phone0","track":{"targets":[]}})",
           R"({"op":"add_uplink","name":"phone","iface":"phone0","track":{"targets":["x"]}})",
           R"({"op":"add_uplink","name":"phone","iface":"phone0",
               "track":{"targets":["1.1.1.1"],"interval_ms":10}})",
           R"({"op":"add_uplink","name":"phone","iface":"phone0",
               "track":{"targets":["1.1.1.1"],"reliability":2}})",
           R"({"op":"add_uplink","name":"phone","iface":"phone0",
               "track":{"targets":["1.1.1.1"],"count":2}})",
           R"({"op":"add_uplink","name":"phone","iface":"phone0",
               "track":{"targets":["1.1.1.1"],"method":"http"}})",
           R"({"op":"add_uplink","name":"phone","iface":"phone0","ipv6_prefixes":["10.0.0.0/8"]})",
           R"({"op":"add_uplink","name":"phone","iface":"phone0","ipv6_prefixes":"2001:db8::/32"})",
           R"({"op":"add_uplink","name":"phone","iface":"phone0","ipv6_prefixes":["::/0"]})",
           R"({"op":"add_uplink","name":"phone","iface":"phone0",
               "ipv6_prefixes":["2001:db8::/32","2001:db8:1::/48"]})",
           R"({"op":"add_uplink","name":"phone","iface":"phone0",
               "track":{"targets":["2001:db8::1"],"method":"arp"}})",
           R"({"op":"update_uplink","name":"phone","metric":5})",
           R"({"op":"update_uplink","name":"modem","iface":"wifi0"})",
           R"({"op":"remove_uplink","name":"phone"})",
           R"({"op":"set_upstream","iface":"modem0","ipv4_addr":"100.64.0.2"})",
       })
    EXPECT_EQ(code(bad).substr(0, 16), "illegal_argument") << bad;
  EXPECT_EQ(host.role_changes, changes);
  ASSERT_EQ(uplinks().size(), 1u);
  EXPECT_EQ(uplinks()[0]["kind"], "ethernet");  // the defaults: nothing half-applied
  EXPECT_EQ(uplinks()[0]["iface"], "modem0");
}

// Each uplink has its own data warning and limit (on its interface), named in status and events.
TEST_F(UplinksTest, AnUplinksLimitIsItsOwn) {
  ASSERT_EQ(code(R"({"op":"init"})"), "ok");
  ASSERT_EQ(code(R"({"op":"add_uplink","name":"modem","iface":"modem0"})"), "ok");
  ASSERT_EQ(code(R"({"op":"add_uplink","name":"phone","iface":"phone0"})"), "ok");
  ASSERT_EQ(
      code(R"({"op":"set_data_warning_and_limit","iface":"phone0","warning":100,"limit":300})"),
      "ok");
  events.clear();
  host.used[1] = 310;
  api.poll();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1]["event"], "limit_reached");
  EXPECT_EQ(events[1]["uplink"], "phone");
  EXPECT_TRUE(api.roles()[1].limited);
  EXPECT_FALSE(api.roles()[0].limited) << "the modem's traffic is not the phone's";
  const Json limits = api.handle(Json::parse(R"({"op":"status"})"), kRoot)["limits"];
  ASSERT_EQ(limits.size(), 1u);
  EXPECT_EQ(limits[0]["uplink"], "phone");
  EXPECT_EQ(limits[0]["used"], 310);
}

TEST_F(UplinksTest, SeveralUplinksAreUpstreamAtOnce) {
  ASSERT_EQ(code(R"({"op":"init"})"), "ok");
  ASSERT_EQ(code(R"({"op":"add_uplink","name":"modem","iface":"modem0","kind":"cellular",
                    "metered":true,"metric":10,"ipv4_addr":"100.64.0.2",
                    "ipv4_gateway":"100.64.0.1"})"),
            "ok");
  EXPECT_TRUE(api.roles()[0].upstream);
  EXPECT_FALSE(api.roles()[1].upstream);
  EXPECT_FALSE(api.fails_over(0)) << "a single uplink has nothing to fail over to";
  ASSERT_EQ(code(R"({"op":"add_uplink","name":"phone","iface":"phone0","kind":"wifi",
                    "metric":20})"),
            "ok");
  EXPECT_TRUE(api.roles()[0].upstream);
  EXPECT_TRUE(api.roles()[1].upstream);
  EXPECT_FALSE(api.roles()[2].upstream);
  EXPECT_TRUE(api.fails_over(0));
  EXPECT_TRUE(api.fails_over(1));
  EXPECT_FALSE(api.fails_over(2));
  const Json u = uplinks();
  ASSERT_EQ(u.size(), 2u);
  EXPECT_EQ(u[0]["name"], "modem");
  EXPECT_EQ(u[0]["kind"], "cellular");
  EXPECT_EQ(u[0]["metered"], true);
  EXPECT_EQ(u[0]["roaming"], "home");
  EXPECT_EQ(u[0]["ipv4_gateway"], "100.64.0.1");
  EXPECT_EQ(u[1]["metric"], 20);
  EXPECT_EQ(u[1]["link"], "up");

  // Roaming begins: an update of one field, an event; the same again changes nothing.
  EXPECT_EQ(api.handle(Json::parse(R"({"op":"update_uplink","name":"modem",
                                       "roaming":"international"})"),
                       kRoot)["changed"],
            true);
  EXPECT_EQ(uplinks()[0]["roaming"], "international");
  EXPECT_EQ(uplinks()[0]["metric"], 10) << "fields not named are kept";
  EXPECT_EQ(api.handle(Json::parse(R"({"op":"update_uplink","name":"modem",
                                       "roaming":"international"})"),
                       kRoot)["changed"],
            false);

  // Tracking through the API, as the YAML's `track` says it; {} stops it.
  ASSERT_EQ(code(R"({"op":"update_uplink","name":"phone",
                    "track":{"targets":["198.51.100.1","2001:db8::1"],"interval_ms":500,
                             "down":2}})"),
            "ok");
  const Json t = uplinks()[1]["track"];
  EXPECT_EQ(t["targets"], Json::parse(R"(["198.51.100.1","2001:db8::1"])"));
  EXPECT_EQ(t["interval_ms"], 500);
  EXPECT_EQ(t["timeout_ms"], 500);
  EXPECT_EQ(t["down"], 2);
  EXPECT_EQ(t["up"], 3);
  EXPECT_EQ(t["method"], "ping");
  ASSERT_EQ(code(R"({"op":"update_uplink","name":"phone",
                    "track":{"targets":["192.0.2.1"],"method":"arp"}})"),
            "ok");
  EXPECT_EQ(uplinks()[1]["track"]["method"], "arp");
  ASSERT_EQ(code(R"({"op":"update_uplink","name":"phone","track":{}})"), "ok");
  EXPECT_FALSE(uplinks()[1].contains("track"));

  // IPv6 prefixes an uplink's network routes: one uplink's each, never overlapping.
  ASSERT_EQ(code(R"({"op":"update_uplink","name":"modem","ipv6_prefixes":["2001:db8:64::/48"]})"),
            "ok");
  EXPECT_EQ(uplinks()[0]["ipv6_prefixes"], Json::parse(R"(["2001:db8:64::/48"])"));
  EXPECT_EQ(code(R"({"op":"update_uplink","name":"phone","ipv6_prefixes":["2001:db8:64:1::/64"]})"),
            "illegal_argument: ipv6_prefixes: 2001:db8:64:1::/64 overlaps 2001:db8:64::/48 of "
            "uplink 'modem'");
  EXPECT_EQ(uplinks()[1]["ipv6_prefixes"], Json::array());
  events.resize(events.size() - 4);  // the four updates

  api.link_changed(1, false);
  EXPECT_EQ(uplinks()[1]["link"], "down");
  api.link_changed(1, true);
  ASSERT_EQ(code(R"({"op":"remove_uplink","name":"phone"})"), "ok");
  EXPECT_FALSE(api.roles()[1].upstream);
  EXPECT_FALSE(api.fails_over(0));

  std::vector<std::string> names;
  for (const auto& e : events)
    names.push_back(e["event"].get<std::string>() + ":" + e.value("uplink", ""));
  const std::vector<std::string> want = {
      "offload_started:",  "uplink_added:modem", "uplink_added:phone",  "uplink_updated:modem",
      "uplink_down:phone", "uplink_up:phone",    "uplink_removed:phone"};
  EXPECT_EQ(names, want);

  ASSERT_EQ(code(R"({"op":"stop"})"), "ok");
  ASSERT_EQ(code(R"({"op":"init"})"), "ok");
  EXPECT_TRUE(uplinks().empty()) << "stop clears the uplinks as it clears the upstream";
}

// modem0 and phone0 upstream, wifi0 downstream; uplinks modem (cellular) and phone (wifi).
constexpr const char* kTwoUplinks =
    "ports:\n"
    "  - {name: modem0, role: upstream, device: a}\n"
    "  - {name: phone0, role: upstream, device: b}\n"
    "  - {name: wifi0, role: downstream, device: c}\n"
    "uplinks:\n"
    "  - {name: modem, iface: modem0, kind: cellular}\n"
    "  - {name: phone, iface: phone0, kind: wifi}\n";

TEST(OffloadApiConfig, UplinksComeFromTheFile) {
  RecordingHost host;
  const conf::Config c = conf::load_string(kTwoUplinks, "test.yaml");
  OffloadApi api(c, host);
  api.apply_config(c, nullptr);
  EXPECT_TRUE(api.roles()[0].upstream);
  EXPECT_TRUE(api.roles()[1].upstream);
  EXPECT_TRUE(api.fails_over(0));
}

// Sessions through the API: the YAML's rules, nothing half-applied, busy during an emergency.
struct EmergencyHost : RecordingHost {
  std::optional<std::string> active_emergency() const override { return emergency; }
  std::optional<std::string> emergency;
};

class SessionsApiTest : public ::testing::Test {
 protected:
  SessionsApiTest() : api(config(), host) {
    api.on_event = [this](const Json& e) { events.push_back(e); };
    api.apply_config(config(), nullptr);  // as the daemon does at start
    api.handle(Json::parse(R"({"op":"init"})"), kRoot);
  }
  static conf::Config config() {
    conf::Config c = conf::load_string(std::string(kTwoUplinks) + kSessions, "test.yaml");
    c.offload.enabled = false;
    return c;
  }
  static constexpr const char* kSessions =
      "routing: {manage: true, session_mark_mask: 0x30000}\n"
      "sessions:\n"
      "  - {name: ecall, match: {macs: ['02:00:00:00:00:01']}, uplinks: [cellular], emergency: "
      "true}\n";
  std::string code(const std::string& json) {
    const Json r = api.handle(Json::parse(json), kRoot);
    return r.value("ok", false) ? "ok" : r.value("error", "?") + ": " + r.value("message", "");
  }
  EmergencyHost host;
  OffloadApi api;
  std::vector<Json> events;
};

TEST_F(SessionsApiTest, SetAndRemoveFollowTheConfigurationsRules) {
  ASSERT_EQ(api.sessions().size(), 1u);
  const int changes = host.role_changes;
  const std::pair<const char*, const char*> bad[] = {
      {R"({"op":"set_session","name":"a b","match":{"downstreams":["wifi0"]}})",
       "illegal_argument: name: expected 1 to 32 of A-Z a-z 0-9 _ -"},
      {R"({"op":"set_session","name":"p"})",
       "illegal_argument: match: expected at least one of macs, addresses, downstreams, uids, "
       "gids, cgroups"},
      {R"({"op":"set_session","name":"p","match":{"downstreams":["modem0"]}})",
       "illegal_argument: match.downstreams: 'modem0' is not a downstream port"},
      {R"({"op":"set_session","name":"p","match":{"macs":["01:00:5e:00:00:01"]}})",
       "illegal_argument: match.macs: expected a unicast MAC address, got '01:00:5e:00:00:01'"},
      {R"({"op":"set_session","name":"p","match":{"ports":["wifi0"]}})",
       "illegal_argument: match.ports: unknown key (known: macs, addresses, downstreams, uids, "
       "gids, cgroups)"},
      {R"({"op":"set_session","name":"p","match":{"cgroups":["../etc"]}})",
       "illegal_argument: match.cgroups: '../etc': a cgroup path has no empty, '.' or '..' parts"},
      {R"({"op":"set_session","name":"p","match":{"uids":["no-such-user-here"]}})",
       "illegal_argument: match.uids: expected a user (a number or a name this system knows), "
       "got \"no-such-user-here\""},
      {R"({"op":"set_session","name":"p","match":{"gids":[4294967295]}})",
       "illegal_argument: match.gids: expected a group (a number or a name this system knows), "
       "got 4294967295"},
      {R"({"op":"set_session","name":"p","match":{"downstreams":["wifi0"]},"uplinks":["sat"]})",
       "illegal_argument: uplinks: expected an uplink's name (modem, phone) or a kind (cellular, "
       "wifi, ethernet, usb, bluetooth), got 'sat'"},
      {R"({"op":"set_session","name":"p","match":{"macs":["02:00:00:00:00:01"]}})",
       "illegal_argument: match: MAC 02:00:00:00:00:01 is also session 'ecall''s, with the same "
       "priority: give one of them a higher priority"},
      {R"({"op":"set_session","name":"p","match":{"downstreams":["wifi0"]},"emergency":true})",
       "illegal_argument: emergency: only the configuration (the integrator) marks a session as "
       "the emergency call's"},
      {R"({"op":"set_session","name":"p","match":{"downstreams":["wifi0"]},"priority":5000})",
       "illegal_argument: priority: expected an integer from -1000 to 1000"},
      {R"({"op":"set_session","name":"p","match":{"downstreams":["wifi0"]},"priority":18446744073709551615})",
       "illegal_argument: priority: expected an integer from -1000 to 1000"},
      {R"({"op":"set_session","name":"p","match":{"downstreams":["wifi0"]},"priority":-3.5})",
       "illegal_argument: priority: expected an integer from -1000 to 1000"},
      {R"({"op":"set_session","name":"p","match":{"downstreams":["wifi0"]},"existing_flows":"keep"})",
       "illegal_argument: existing_flows: keep needs routing.mark_mask (the connection's uplink "
       "goes into its mark)"},
      {R"({"op":"set_session","name":"p","match":{"downstreams":["wifi0"]},"limit_bytes":-1})",
       "illegal_argument: limit_bytes: expected bytes (an integer from 0 to 2^60), or null for "
       "none"},
      {R"({"op":"set_session","name":"p","match":{"downstreams":["wifi0"]},"warning_bytes":"1G"})",
       "illegal_argument: warning_bytes: expected bytes (an integer from 0 to 2^60), or null for "
       "none"},
      {R"({"op":"remove_session","name":"nope"})", "illegal_argument: name: no session 'nope'"},
  };
  for (const auto& [req, want] : bad) EXPECT_EQ(code(req), want) << req;
  EXPECT_EQ(host.role_changes, changes);  // nothing applied
  EXPECT_EQ(api.sessions().size(), 1u);

  ASSERT_EQ(
      code(
          R"({"op":"set_session","name":"p","match":{"downstreams":["wifi0"]},"uplinks":["phone"],"roaming":"forbidden"})"),
      "ok");
  EXPECT_EQ(host.role_changes, changes + 1);
  ASSERT_EQ(api.sessions().size(), 2u);
  EXPECT_EQ(api.sessions()[1].roaming, conf::RoamingPolicy::forbidden);
  EXPECT_EQ(events.back()["event"], "session_update");
  EXPECT_EQ(events.back()["action"], "added");
  // Changing only what it names; the same again changes nothing.
  ASSERT_EQ(code(R"({"op":"set_session","name":"p","priority":3})"), "ok");
  EXPECT_EQ(api.sessions()[1].uplinks, std::vector<std::string>{"phone"});
  EXPECT_EQ(api.sessions()[1].priority, 3);
  EXPECT_EQ(
      api.handle(Json::parse(R"({"op":"set_session","name":"p","priority":3})"), kRoot)["changed"],
      false);
  // The box's own applications, by socket owner: numbers or names.
  ASSERT_EQ(code(R"({"op":"set_session","name":"p","match":{"uids":[4242,"root"],"gids":["0"]}})"),
            "ok");
  EXPECT_EQ(api.sessions()[1].match.uids, (std::vector<uint32_t>{4242, 0}));
  EXPECT_EQ(api.sessions()[1].match.gids, std::vector<uint32_t>{0});
  ASSERT_EQ(
      code(R"({"op":"set_session","name":"p","match":{"cgroups":["system.slice/ota.service"]}})"),
      "ok");
  EXPECT_EQ(api.sessions()[1].match.cgroups, std::vector<std::string>{"system.slice/ota.service"});
  ASSERT_EQ(code(R"({"op":"set_session","name":"p","match":{"downstreams":["wifi0"]}})"), "ok");
  // A data warning and limit of its own; null takes one away.
  ASSERT_EQ(code(R"({"op":"set_session","name":"p","warning_bytes":2000,"limit_bytes":3000})"),
            "ok");
  EXPECT_EQ(api.sessions()[1].warning_bytes, 2000u);
  EXPECT_EQ(api.sessions()[1].limit_bytes, 3000u);
  ASSERT_EQ(code(R"({"op":"set_session","name":"p","warning_bytes":null})"), "ok");
  EXPECT_FALSE(api.sessions()[1].warning_bytes);
  EXPECT_EQ(api.sessions()[1].limit_bytes, 3000u);
  // The mask holds three sessions.
  ASSERT_EQ(code(R"({"op":"set_session","name":"q","match":{"addresses":["10.0.0.0/8"]}})"), "ok");
  EXPECT_EQ(code(R"({"op":"set_session","name":"r","match":{"addresses":["10.1.0.0/16"]}})"),
            "illegal_state: routing.session_mark_mask has room for 3 sessions, 4 are listed "
            "(session i is mark value i + 1)");
  ASSERT_EQ(code(R"({"op":"remove_session","name":"q"})"), "ok");
  EXPECT_EQ(events.back()["action"], "removed");
  EXPECT_EQ(api.sessions().size(), 2u);
}

// Roles: a caller outside api.control_group may only read; only root and api.emergency_group
// may start or end an emergency. Nothing a refused caller asks is applied.
TEST_F(SessionsApiTest, CallersMayOnlyWhatTheirRolesAllow) {
  const int changes = host.role_changes;
  api::Caller reader{4242, 4242, 77, false, false};
  const Json set =
      Json::parse(R"({"op":"set_session","name":"p","match":{"downstreams":["wifi0"]}})");
  Json r = api.handle(set, reader);
  EXPECT_EQ(r["error"], "permission_denied");
  EXPECT_EQ(r["message"], "set_session: uid 4242 may only read (control needs api.control_group)");
  EXPECT_EQ(api.handle(Json::parse(R"({"op":"status"})"), reader)["ok"], true);
  EXPECT_EQ(api.handle(Json::parse(R"({"op":"clients"})"), reader)["ok"], true);
  // The HAL's statistics reset what they report: not a read.
  EXPECT_EQ(
      api.handle(Json::parse(R"({"op":"get_forwarded_stats","iface":"modem0"})"), reader)["error"],
      "permission_denied");
  EXPECT_EQ(
      api.handle(
          Json::parse(
              R"({"op":"set_session","name":"apps","match":{"uids":[4242]},"limit_bytes":5})"),
          kRoot)["message"],
      "limit_bytes: a data warning or limit counts forwarded traffic: a session with uids, "
      "gids or cgroups (the box's own, local traffic) cannot have one");
  api::Caller controller{4242, 4242, 77, true, false};
  r = api.handle(Json::parse(R"({"op":"set_emergency","session":"ecall"})"), controller);
  EXPECT_EQ(r["error"], "permission_denied");
  EXPECT_EQ(r["message"],
            "set_emergency: only root (the integrator) and api.emergency_group may start or end "
            "an emergency, not uid 4242");
  EXPECT_EQ(host.role_changes, changes);
  EXPECT_EQ(api.handle(set, controller)["ok"], true);
}

TEST_F(SessionsApiTest, OtherSessionsAreBusyDuringAnEmergency) {
  ASSERT_EQ(code(R"({"op":"set_session","name":"p","match":{"downstreams":["wifi0"]}})"), "ok");
  host.emergency = "ecall";
  const int changes = host.role_changes;
  EXPECT_EQ(code(R"({"op":"set_session","name":"p","priority":1})"),
            "busy: session 'ecall' is the active emergency: other sessions cannot change until it "
            "ends");
  EXPECT_EQ(code(R"({"op":"remove_session","name":"p"})").substr(0, 5), "busy:");
  EXPECT_EQ(code(R"({"op":"remove_session","name":"ecall"})"),
            "busy: session 'ecall' is the active emergency: end it first");
  EXPECT_EQ(code(R"({"op":"set_session","name":"ecall","priority":2})"), "ok");  // its own
  EXPECT_TRUE(api.sessions()[0].emergency);  // kept: only the configuration says so
  EXPECT_EQ(host.role_changes, changes + 1);
}

}  // namespace
}  // namespace tp
