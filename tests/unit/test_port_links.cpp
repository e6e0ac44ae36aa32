// Interface control: the admin state and carrier events, what persists across restarts, and the
// SIOCSIFFLAGS switch against a real interface in a namespace of the test's own.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "interface_admin.hpp"
#include "netns.hpp"
#include "port_links.hpp"
#include "shell.hpp"
#include "state_file.hpp"

namespace tp {
namespace {

std::vector<conf::PortConfig> ports(bool wifi_persists) {
  std::vector<conf::PortConfig> p(3);
  p[0].name = "modem0";
  p[0].role = conf::Role::upstream;
  p[1].name = "wifi0";
  p[1].persist_enabled = wifi_persists;
  p[2].name = "usb0";
  return p;
}

class PortLinksTest : public ::testing::Test {
 protected:
  std::string dir =
      std::filesystem::temp_directory_path() / ("tp-port-links-" + std::to_string(getpid()));
  std::string file = dir + "/interfaces.json";
  void SetUp() override { std::filesystem::create_directories(dir); }
  void TearDown() override { std::filesystem::remove_all(dir); }
};

TEST_F(PortLinksTest, OneEventPerChangeOfAdminOrCarrierNoneAtStart) {
  PortLinks links(ports(false), file);
  using L = Dataplane::LinkState;
  EXPECT_TRUE(links.changes({L{true, true}, L{true, true}, L{true, false}}).empty());
  EXPECT_TRUE(links.changes({L{true, true}, L{true, true}, L{true, false}}).empty());
  const auto ev = links.changes({L{true, true}, L{false, false}, L{true, true}});
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0]["event"], "interface_link");
  EXPECT_EQ(ev[0]["iface"], "wifi0");
  EXPECT_EQ(ev[0]["admin"], "down");
  EXPECT_EQ(ev[0]["carrier"], false);
  EXPECT_EQ(ev[0]["changed"], (nlohmann::json{"admin", "carrier"}));
  EXPECT_EQ(ev[1]["iface"], "usb0");  // a cable: only the carrier
  EXPECT_EQ(ev[1]["admin"], "up");
  EXPECT_EQ(ev[1]["changed"], (nlohmann::json{"carrier"}));
}

TEST_F(PortLinksTest, OnlyPersistingPortsKeepWhatWasAsked) {
  {
    PortLinks links(ports(true), file);
    EXPECT_TRUE(links.saved().empty());
    EXPECT_EQ(links.asked(1, false), "");
    EXPECT_EQ(links.asked(2, false), "");  // usb0 does not persist: remembered, not saved
    EXPECT_EQ(links.requested(2), false);
  }
  EXPECT_EQ(read_state_file(file).value_or(""), "{\"wifi0\":false}\n");
  PortLinks next(ports(true), file);  // the next ignition
  EXPECT_EQ(next.saved(), (std::vector<std::pair<uint8_t, bool>>{{1, false}}));
  EXPECT_EQ(next.requested(2), std::nullopt);
  // The configuration no longer persists wifi0: the saved word is ignored, and says so.
  PortLinks changed(ports(false), file);
  EXPECT_TRUE(changed.saved().empty());
  ASSERT_EQ(changed.ignored().size(), 1u);
}

TEST_F(PortLinksTest, AFileThatIsNotAnObjectIsIgnored) {
  write_state_file(file, "[1, 2");
  PortLinks links(ports(true), file);
  EXPECT_TRUE(links.saved().empty());
  EXPECT_EQ(links.ignored(), (std::vector<std::string>{"not a JSON object"}));
}

TEST(InterfaceAdmin, SwitchesARealInterface) {
  test::PrivateNetns ns;
  if (!ns.ok()) GTEST_SKIP() << "needs root: a network namespace of its own";
  ASSERT_EQ(test::sh("ip link add tpa0 type veth peer name tpa1 && ip link set tpa0 up && "
                     "ip link set tpa1 up"),
            0);
  const auto up = [] { return test::sh("ip link show tpa0 | grep -q '<.*[<,]UP[,>]'") == 0; };
  EXPECT_TRUE(up());
  EXPECT_EQ(set_interface_up("tpa0", false), "");
  EXPECT_FALSE(up());
  EXPECT_EQ(set_interface_up("tpa0", false), "");  // already down: nothing to do
  EXPECT_EQ(set_interface_up("tpa0", true), "");
  EXPECT_TRUE(up());
  EXPECT_NE(set_interface_up("tpnone", true), "");
  EXPECT_NE(set_interface_up("a-name-much-too-long", true), "");
}

}  // namespace
}  // namespace tp
