// Bad configurations get one exact message naming file, line, column and key; good ones load.
#include <gtest/gtest.h>

#include <fstream>

#include "config.hpp"

namespace tp::conf {
namespace {

const char* kGood = R"(ports:
  - name: modem0
    role: upstream
    device: net_af_packet0,iface=veth0
    mac: "02:00:00:00:00:01"
  - name: wifi0
    role: downstream
    device: net_af_packet1,iface=veth1
    queues: 2
    mtu: 1400
dataplane:
  worker_lcores: [1, 2]
  burst: 64
  hugepages: "off"
state_dir: /run/tp
)";

TEST(Config, GoodFileLoads) {
  const Config c = load_string(kGood, "good.yaml");
  ASSERT_EQ(c.ports.size(), 2u);
  EXPECT_EQ(c.ports[0].role, Role::upstream);
  EXPECT_EQ(c.ports[1].queues, 2);
  EXPECT_EQ(c.ports[1].mtu, 1400);
  ASSERT_TRUE(c.ports[0].mac.has_value());
  EXPECT_EQ((*c.ports[0].mac)[5], 1);
  EXPECT_EQ(c.dataplane.worker_lcores, (std::vector<unsigned>{1, 2}));
  EXPECT_EQ(c.dataplane.burst, 64);
  EXPECT_EQ(c.dataplane.hugepages, Hugepages::off);
  EXPECT_EQ(c.state_dir, "/run/tp");
}

struct Bad {
  const char* yaml;
  const char* message;
};

TEST(Config, BadFilesNameFileLineColumnAndKey) {
  const Bad cases[] = {
      {"", "bad.yaml: the file is empty"},
      {"ports: [", "bad.yaml:1:1: end of sequence flow not found"},
      {"portz: []\n",
       "bad.yaml:1:1: portz: unknown key (known: board, ports, dataplane, offload, state_dir)"},
      {"dataplane: {}\n", "bad.yaml:1:1: missing key 'ports'"},
      {"ports: []\n", "bad.yaml:1:8: ports: expected a non-empty list of ports"},
      {"ports:\n  - name: m\n    role: upstream\n", "bad.yaml:2:5: ports[0]: missing key 'device'"},
      {"ports:\n  - name: m\n    role: sideways\n    device: d\n",
       "bad.yaml:3:11: ports[0].role: expected one of upstream, downstream, got 'sideways'"},
      {"ports:\n  - name: m\n    role: upstream\n    device: d\n    mtu: 100000\n",
       "bad.yaml:5:10: ports[0].mtu: expected an integer from 576 to 9000, got 100000"},
      {"ports:\n  - name: m\n    role: upstream\n    device: d\n    queues: two\n",
       "bad.yaml:5:13: ports[0].queues: expected an integer, got 'two'"},
      {"ports:\n  - name: m\n    role: upstream\n    device: d\n    mac: 01:00:00:00:00:01\n",
       "bad.yaml:5:10: ports[0].mac: expected a unicast MAC address, got '01:00:00:00:00:01'"},
      {"ports:\n  - name: m\n    role: upstream\n    device: d\n    colour: red\n",
       "bad.yaml:5:5: ports[0].colour: unknown key (known: name, role, device, queues, mtu, mac)"},
      {"ports:\n  - {name: m, role: upstream, device: a}\n  - {name: m, role: downstream, device: "
       "b}\n",
       "bad.yaml:3:5: ports[1]: duplicate port name 'm'"},
      {"ports:\n  - {name: m, role: downstream, device: a}\n",
       "bad.yaml:2:3: ports: expected at least one port with role upstream"},
      {"ports:\n  - {name: waytoolonginterfacename, role: upstream, device: a}\n",
       "bad.yaml:2:12: ports[0].name: expected an interface name of 1 to 15 characters, got "
       "'waytoolonginterfacename'"},
      {"ports:\n  - {name: m, role: upstream, device: a}\ndataplane:\n  worker_lcores: [1, 1]\n",
       "bad.yaml:4:22: dataplane.worker_lcores[1]: lcore 1 is listed twice"},
      {"ports:\n  - {name: m, role: upstream, device: a}\ndataplane:\n  main_lcore: 1\n",
       "bad.yaml:4:3: dataplane: main_lcore 1 cannot also be a worker lcore"},
      {"ports:\n  - {name: m, role: upstream, device: a}\ndataplane:\n  exception_ring_size: "
       "1000\n",
       "bad.yaml:4:24: dataplane.exception_ring_size: expected a power of two"},
      {"ports:\n  - {name: m, role: upstream, device: a}\nstate_dir: relative/path\n",
       "bad.yaml:3:12: state_dir: expected an absolute path"},
  };
  for (const Bad& b : cases) {
    SCOPED_TRACE(b.yaml);
    try {
      load_string(b.yaml, "bad.yaml");
      ADD_FAILURE() << "accepted";
    } catch (const ConfigError& e) {
      EXPECT_EQ(std::string(e.what()), b.message);
    }
  }
}

TEST(Config, BoardProfilesNameTheDevices) {
  const std::string dir = ::testing::TempDir();
  {
    std::ofstream b(dir + "/board.yaml");
    b << "name: t\ndevices:\n  modem: net_null0\n  wifi: net_null1\n";
  }
  const Config c =
      load_string("board: " + dir +
                      "/board.yaml\nports:\n  - {name: m, role: upstream, device: board:modem}\n"
                      "  - {name: w, role: downstream, device: board:wifi}\n",
                  "cfg.yaml");
  EXPECT_EQ(c.ports[0].device, "net_null0");
  EXPECT_EQ(c.ports[1].device, "net_null1");
  try {
    load_string(
        "board: " + dir + "/board.yaml\nports:\n  - {name: m, role: upstream, device: board:usb}\n",
        "cfg.yaml");
    ADD_FAILURE() << "accepted an unknown slot";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), "cfg.yaml:3:39: ports[0].device: board profile " + dir +
                                         "/board.yaml has no device 'usb' (it has: modem, wifi)");
  }
  EXPECT_THROW(
      load_string("ports:\n  - {name: m, role: upstream, device: board:modem}\n", "cfg.yaml"),
      ConfigError);
}

TEST(Config, MissingFileIsAnError) {
  EXPECT_THROW(load_file("/nonexistent/tetherpath.yaml"), ConfigError);
}

}  // namespace
}  // namespace tp::conf
