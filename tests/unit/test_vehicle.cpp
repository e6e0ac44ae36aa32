// The vehicle's states as pure logic (who may ask what, when), their YAML section and its
// refusals, the classifier's and the offload decision's garage mode, the silent-mode file's
// watcher on a real directory, and the doorbell sleep a suspended worker takes.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "config.hpp"
#include "config_refusal.hpp"
#include "doorbell.hpp"
#include "session_policy.hpp"
#include "silent_mode_file.hpp"
#include "vehicle_modes.hpp"

namespace tp {
namespace {

using conf::ConfigError;
using conf::load_string;

#define MANAGED                                                                                    \
  "ports:\n  - {name: m, role: upstream, device: a}\n  - {name: w, role: downstream, device: b}\n" \
  "uplinks:\n  - {name: modem, iface: m, kind: cellular}\n"                                        \
  "routing: {manage: true, session_mark_mask: 0xf0000}\n"                                          \
  "sessions:\n  - {name: head_unit, match: {addresses: [192.168.60.10/32]}, uplinks: [modem]}\n"   \
  "  - {name: phones, match: {downstreams: [w]}, uplinks: [modem]}\n"

std::string refusal(const std::string& yaml) { return config_refusal(yaml); }

conf::VehicleConfig garage_config() {
  conf::VehicleConfig v;
  v.garage_sessions = {"head_unit"};
  v.silent_garage = true;
  v.silent_ports = {"w"};
  return v;
}

TEST(Vehicle, SectionIsRead) {
  const conf::Config c = load_string(MANAGED
                                     "vehicle:\n  garage: {sessions: [head_unit]}\n"
                                     "  silent_mode: {file: /run/silent, garage: true, "
                                     "ports_off: [w]}\n",
                                     "v.yaml");
  EXPECT_EQ(c.vehicle.garage_sessions, std::vector<std::string>{"head_unit"});
  EXPECT_EQ(c.vehicle.silent_file, "/run/silent");
  EXPECT_TRUE(c.vehicle.silent_garage);
  EXPECT_EQ(c.vehicle.silent_ports, std::vector<std::string>{"w"});
  // Without the section: Android Automotive's file, no garage sessions.
  const conf::Config d = load_string(MANAGED, "v.yaml");
  EXPECT_EQ(d.vehicle.silent_file, "/sys/kernel/silent_boot/pm_silentmode_kernel_state");
  EXPECT_TRUE(d.vehicle.garage_sessions.empty());
}

TEST(Vehicle, BadSectionsNameFileLineAndKey) {
  EXPECT_EQ(refusal(MANAGED "vehicle:\n  garage: {sessions: [nobody]}\n"),
            "bad.yaml:11:23: vehicle.garage.sessions[0]: no session 'nobody' in this file's "
            "sessions");
  EXPECT_EQ(refusal(MANAGED "vehicle:\n  silent_mode: {ports_off: [x]}\n"),
            "bad.yaml:11:29: vehicle.silent_mode.ports_off[0]: no port 'x'");
  EXPECT_EQ(refusal(MANAGED "vehicle:\n  silent_mode: {garage: true}\n"),
            "bad.yaml:11:25: vehicle.silent_mode.garage: silent mode's garage needs "
            "vehicle.garage.sessions");
  EXPECT_EQ(refusal(MANAGED "vehicle:\n  silent_mode: {file: relative}\n"),
            "bad.yaml:11:23: vehicle.silent_mode.file: expected an absolute path, or \"\" to "
            "watch none");
  EXPECT_EQ(refusal(MANAGED "vehicle:\n  garage: {session: [head_unit]}\n").substr(0, 45),
            "bad.yaml:11:12: vehicle.garage.session: unkno");
}

TEST(Vehicle, GarageRunsOnlyWhileTheVehicleIsNotInUse) {
  VehicleModes v(garage_config());
  EXPECT_FALSE(v.garage());
  EXPECT_EQ(v.set_garage(true), "");  // in use: unknown, so not refused
  EXPECT_TRUE(v.garage());
  EXPECT_EQ(v.set_in_use(true), "");  // a driver gets in
  EXPECT_FALSE(v.garage());
  EXPECT_EQ(v.set_garage(true).rfind("busy: ", 0), 0u);
  EXPECT_EQ(v.shutdown_refusal().rfind("busy: ", 0), 0u);
  v.set_in_use(false);
  EXPECT_EQ(v.shutdown_refusal(), "");
  EXPECT_EQ(v.set_garage(true), "");
  EXPECT_EQ(v.set_garage(false), "");
  EXPECT_FALSE(v.garage());
  EXPECT_EQ(VehicleModes(conf::VehicleConfig{}).set_garage(true),
            "no garage sessions are configured (vehicle.garage.sessions)");
}

TEST(Vehicle, SilentModeIsGarageAndPortsOffAsConfigured) {
  VehicleModes v(garage_config());
  v.set_silent(true);
  EXPECT_TRUE(v.garage());
  EXPECT_TRUE(v.ports_off());
  v.set_in_use(true);  // someone uses the vehicle: silent or not, everyone is forwarded
  EXPECT_FALSE(v.garage());
  v.set_silent(false);
  EXPECT_FALSE(v.ports_off());
  conf::VehicleConfig plain = garage_config();
  plain.silent_garage = false;
  plain.silent_ports.clear();
  VehicleModes p(plain);
  p.set_silent(true);
  EXPECT_FALSE(p.garage());
  EXPECT_FALSE(p.ports_off());
  // A reload without garage sessions ends a garage mode asked for.
  VehicleModes r(garage_config());
  r.set_garage(true);
  r.configure(conf::VehicleConfig{});
  EXPECT_FALSE(r.garage());
}

TEST(Vehicle, SilentModeFileText) {
  EXPECT_TRUE(silent_mode_text("1"));
  EXPECT_TRUE(silent_mode_text("1\n"));
  EXPECT_FALSE(silent_mode_text("0\n"));
  EXPECT_FALSE(silent_mode_text(""));
  EXPECT_FALSE(silent_mode_text("10"));
  EXPECT_FALSE(silent_mode_text("yes"));
}

TEST(Vehicle, GarageClassifierRefusesOthersNewConnectionsAndHoldsTheRest) {
  const conf::Config c = load_string(MANAGED, "v.yaml");
  ClassifierPlan p;
  p.sessions = c.sessions;
  p.slots = {0, 1};
  p.session_mask = 0xf0000;
  p.uplink_ifaces = {"m"};
  EXPECT_EQ(session_table(p).find("garage"), std::string::npos);
  p.garage_slots = std::vector<std::size_t>{0};
  const std::string t = session_table(p);
  EXPECT_NE(t.find("  chain garage {\n    type filter hook forward priority -10; policy accept;\n"
                   "    ct mark and 0x000f0000 == 0x00010000 accept\n"
                   "    oifname { \"m\" } ct state new reject with icmpx admin-prohibited\n"
                   "    oifname { \"m\" } drop\n"
                   "    iifname { \"m\" } drop\n  }\n"),
            std::string::npos)
      << t;
}

TEST(Vehicle, SilentModeFileIsWatched) {
  char tmpl[] = "/tmp/tp-silent-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl, file = dir + "/pm_silentmode_kernel_state";
  std::ofstream(file) << "0\n";
  boost::asio::io_context io;
  std::vector<bool> seen;
  SilentModeFile watch(io, file, [&](bool s) { seen.push_back(s); });
  ASSERT_TRUE(watch.watched()) << watch.error();
  EXPECT_FALSE(watch.silent());
  auto run_a_little = [&] {
    io.restart();
    io.run_for(std::chrono::milliseconds(100));
  };
  std::ofstream(file) << "1\n";  // written in place, as sysfs is
  run_a_little();
  std::ofstream(dir + "/other") << "1\n";  // not ours
  run_a_little();
  std::ofstream(dir + "/.new") << "0\n";  // made anew and renamed into place
  std::filesystem::rename(dir + "/.new", file);
  run_a_little();
  std::filesystem::remove(file);  // gone: not silent (it was not)
  run_a_little();
  EXPECT_EQ(seen, (std::vector<bool>{true, false}));
  std::filesystem::remove_all(dir);
  // A directory that does not exist: not watched, and says why.
  SilentModeFile none(io, "/nonexistent-tp/state", [](bool) {});
  EXPECT_FALSE(none.watched());
  EXPECT_NE(none.error().find("/nonexistent-tp"), std::string::npos);
}

TEST(Vehicle, SuspendedSleepEndsOnlyOnTheRing) {
  Doorbell bell;
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  bell.watch({p[0]});
  ASSERT_EQ(write(p[1], "x", 1), 1);  // a watched descriptor is readable: ignored while suspended
  std::atomic<bool> woke{false}, held{true}, stop{false};
  std::thread sleeper([&] {
    bell.sleep_while(held, stop);
    woke = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(woke.load());
  held = false;  // resumed, then one ring: not lost, whenever the sleeper announced its sleep
  bell.ring();
  sleeper.join();
  EXPECT_TRUE(woke.load());
  close(p[0]);
  close(p[1]);
}

}  // namespace
}  // namespace tp
