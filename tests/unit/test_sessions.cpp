// Sessions as pure logic: the YAML section and its refusals, which uplinks a session's policy
// picks as health and roaming change, and the nftables rules that classify new connections.
#include <gtest/gtest.h>

#include "config.hpp"
#include "config_refusal.hpp"
#include "session_policy.hpp"
#include "session_set.hpp"

namespace tp {
namespace {

using conf::ConfigError;
using conf::load_string;

// Uplinks modem (cellular) and phone (wifi); downstreams w and u; sessions follow.
#define TWO_UPLINKS                                                                              \
  "ports:\n  - {name: m, role: upstream, device: a}\n  - {name: p, role: upstream, device: c}\n" \
  "  - {name: w, role: downstream, device: b}\n  - {name: u, role: downstream, device: d}\n"     \
  "uplinks:\n  - {name: modem, iface: m, kind: cellular}\n"                                      \
  "  - {name: phone, iface: p, kind: wifi}\n"

#define MANAGED TWO_UPLINKS "routing: {manage: true, session_mark_mask: 0xf0000}\nsessions:\n"

std::string refusal(const std::string& yaml) { return config_refusal(yaml); }

TEST(Sessions, AreRead) {
  const conf::Config c = load_string(
      MANAGED
      "  - name: head_unit\n"
      "    match: {macs: ['02:aa:00:00:00:01'], addresses: [192.168.60.0/24, '2001:db8::/64']}\n"
      "    uplinks: [phone, cellular]\n"
      "    priority: 5\n"
      "    roaming: national\n"
      "    emergency: true\n"
      "  - {name: rear, match: {downstreams: [w]}, connection: local, limit_bytes: 3000000}\n",
      "good.yaml");
  ASSERT_EQ(c.sessions.size(), 2u);
  const conf::SessionConfig& h = c.sessions[0];
  EXPECT_EQ(h.name, "head_unit");
  EXPECT_EQ(conf::mac_string(h.match.macs.at(0)), "02:aa:00:00:00:01");
  EXPECT_EQ(h.match.addresses.at(1).str(), "2001:db8::/64");
  EXPECT_EQ(h.uplinks, (std::vector<std::string>{"phone", "cellular"}));
  EXPECT_EQ(h.priority, 5);
  EXPECT_EQ(h.roaming, conf::RoamingPolicy::national);
  EXPECT_EQ(h.connection, conf::Connection::internet);
  EXPECT_TRUE(h.emergency);
  EXPECT_FALSE(c.sessions[1].emergency);
  EXPECT_EQ(c.sessions[1].match.downstreams, std::vector<std::string>{"w"});
  EXPECT_EQ(c.sessions[1].connection, conf::Connection::local);
  EXPECT_TRUE(c.sessions[1].uplinks.empty());
  EXPECT_FALSE(h.limit_bytes);
  EXPECT_EQ(c.sessions[1].limit_bytes, 3000000u);
  EXPECT_FALSE(c.sessions[1].warning_bytes);
  EXPECT_EQ(c.routing.session_mark_mask, 0xf0000u);
}

TEST(Sessions, BadOnesNameFileLineColumnAndKey) {
  const std::pair<std::string, std::string> cases[] = {
      {MANAGED "  - {name: a, match: {downstreams: [w]}, uplinks: [satphone]}\n",
       "bad.yaml:11:52: sessions[0].uplinks[0]: expected an uplink's name (modem, phone) or a "
       "kind (cellular, wifi, ethernet, usb, bluetooth), got 'satphone'"},
      {MANAGED "  - {name: a, match: {addresses: [10.0.0.0/8]}}\n"
               "  - {name: b, match: {addresses: [10.1.0.0/8]}}\n",
       "bad.yaml:12:22: sessions[1].match: address 10.1.0.0/8 is also session 'a''s, with the "
       "same priority: give one of them a higher priority"},
      {MANAGED "  - {name: a, match: {macs: ['02:00:00:00:00:01']}}\n"
               "  - {name: b, match: {macs: ['02:00:00:00:00:01']}, priority: 1}\n"
               "  - {name: c, match: {macs: ['02:00:00:00:00:01']}, priority: 1}\n",
       "bad.yaml:13:22: sessions[2].match: MAC 02:00:00:00:00:01 is also session 'b''s, with the "
       "same priority: give one of them a higher priority"},
      {MANAGED "  - {name: a, match: {}}\n",
       "bad.yaml:11:22: sessions[0].match: expected at least one of macs, addresses, downstreams, "
       "uids, gids, cgroups"},
      {MANAGED "  - {name: a, match: {downstreams: [m]}}\n",
       "bad.yaml:11:37: sessions[0].match.downstreams[0]: port 'm' is not a downstream port"},
      {MANAGED "  - {name: a, match: {macs: ['01:00:5e:00:00:01']}}\n",
       "bad.yaml:11:30: sessions[0].match.macs[0]: expected a unicast MAC address, got "
       "'01:00:5e:00:00:01'"},
      {MANAGED "  - {name: a, match: {downstreams: [w]}, uplinks: [phone, phone]}\n",
       "bad.yaml:11:59: sessions[0].uplinks[1]: 'phone' is listed twice"},
      {MANAGED "  - {name: a, match: {downstreams: [w]}, connection: offline}\n",
       "bad.yaml:11:54: sessions[0].connection: expected one of internet, local, got 'offline'"},
      {MANAGED "  - {name: a, match: {downstreams: [w]}, roaming: sometimes}\n",
       "bad.yaml:11:51: sessions[0].roaming: expected one of forbidden, national, international, "
       "always, got 'sometimes'"},
      {MANAGED
       "  - {name: a, match: {downstreams: [w]}}\n  - {name: a, match: {downstreams: [u]}}\n",
       "bad.yaml:12:12: sessions[1].name: session 'a' is listed twice"},
      {TWO_UPLINKS "sessions:\n  - {name: a, match: {downstreams: [w]}}\n",
       "bad.yaml:10:3: sessions: sessions need routing.manage: true (tetherpath programs their "
       "routing)"},
      {TWO_UPLINKS
       "routing: {manage: true, session_mark_mask: 0x1}\nsessions:\n"
       "  - {name: a, match: {downstreams: [w]}}\n  - {name: b, match: {downstreams: [u]}}\n",
       "bad.yaml:11:3: sessions: routing.session_mark_mask has room for 1 sessions, 2 are listed "
       "(session i is mark value i + 1)"},
      {TWO_UPLINKS "routing: {manage: true, mark_mask: 0xf0, session_mark_mask: 0x30}\n",
       "bad.yaml:9:61: routing.session_mark_mask: overlaps routing.mark_mask"},
      {TWO_UPLINKS "routing: {manage: true, table: 120, session_mark_mask: 0xf0000}\n",
       "bad.yaml:9:32: routing.table: tables 120 and up (uplinks: T to T+64, sessions: T+128 and "
       "up) would include 250 to 255 (main, local): choose another"},
      {TWO_UPLINKS "routing: {manage: true, session_mark_mask: 0x50}\n",
       "bad.yaml:9:44: routing.session_mark_mask: expected contiguous bits"},
  };
  for (const auto& [yaml, want] : cases) EXPECT_EQ(refusal(yaml), want) << yaml;
}

SessionUplink up(const char* name, conf::UplinkKind kind, Health h = Health::up,
                 conf::Roaming r = conf::Roaming::home) {
  return {name, kind, r, {0, h, {}}};
}

TEST(Sessions, RouteByTheMostPreferredHealthyAllowedUplink) {
  const SteadyTime now = std::chrono::steady_clock::now();
  conf::SessionConfig s;
  s.uplinks = {"phone", "cellular"};
  std::vector<SessionUplink> u = {up("modem", conf::UplinkKind::cellular),
                                  up("phone", conf::UplinkKind::wifi),
                                  up("modem2", conf::UplinkKind::cellular)};
  EXPECT_EQ(session_route(s, u, now), std::vector<std::size_t>{1});
  u[1].now.health = Health::down;  // the phone gone: every cellular uplink, sharing
  EXPECT_EQ(session_route(s, u, now), (std::vector<std::size_t>{0, 2}));
  u[1].now.health = Health::degraded;  // healthy cellular beats a degraded phone
  EXPECT_EQ(session_route(s, u, now), (std::vector<std::size_t>{0, 2}));
  u[0].now.health = u[2].now.health = Health::down;  // degraded beats nothing
  EXPECT_EQ(session_route(s, u, now), std::vector<std::size_t>{1});
  u[1].now.health = Health::down;
  EXPECT_TRUE(session_route(s, u, now).empty());  // refused, never another uplink

  // Back from an outage and still held: another allowed uplink first, itself if nothing else.
  u = {up("modem", conf::UplinkKind::cellular), up("phone", conf::UplinkKind::wifi)};
  u[1].now.held_until = now + std::chrono::seconds(10);
  EXPECT_EQ(session_route(s, u, now), std::vector<std::size_t>{0});
  u[0].now.health = Health::down;
  EXPECT_EQ(session_route(s, u, now), std::vector<std::size_t>{1});
}

TEST(Sessions, RoamingLocalAndEmptyPolicies) {
  const SteadyTime now = std::chrono::steady_clock::now();
  conf::SessionConfig s;
  s.uplinks = {"modem", "phone"};
  std::vector<SessionUplink> u = {
      up("modem", conf::UplinkKind::cellular, Health::up, conf::Roaming::international),
      up("phone", conf::UplinkKind::wifi)};
  EXPECT_EQ(session_route(s, u, now), std::vector<std::size_t>{0});  // always
  s.roaming = conf::RoamingPolicy::national;
  EXPECT_EQ(session_route(s, u, now), std::vector<std::size_t>{1});
  u[0].roaming = conf::Roaming::national;
  EXPECT_EQ(session_route(s, u, now), std::vector<std::size_t>{0});
  s.roaming = conf::RoamingPolicy::forbidden;
  EXPECT_EQ(session_route(s, u, now), std::vector<std::size_t>{1});
  s.connection = conf::Connection::local;
  EXPECT_TRUE(session_route(s, u, now).empty());
  s.connection = conf::Connection::internet;
  s.uplinks.clear();
  EXPECT_TRUE(session_route(s, u, now).empty());
}

ClassifierPlan plan(std::vector<conf::SessionConfig> sessions, std::vector<std::size_t> slots,
                    std::vector<std::string> uplinks, uint32_t uplink_mask) {
  ClassifierPlan p;
  p.sessions = std::move(sessions);
  p.slots = std::move(slots);
  p.session_mask = 0xf0000;
  p.uplink_ifaces = std::move(uplinks);
  p.uplink_mask = uplink_mask;
  return p;
}

TEST(Sessions, SelectorsMostSpecificFirstThenPriority) {
  const conf::Config c = load_string(
      MANAGED
      "  - {name: wifi, match: {downstreams: [w], addresses: [192.168.0.0/16]}}\n"
      "  - {name: vip, match: {addresses: [192.168.60.0/24]}, priority: 1}\n"
      "  - {name: low, match: {addresses: [192.168.61.0/24]}}\n"
      "  - {name: phone, match: {macs: ['02:00:00:00:00:07'], addresses: ['2001:db8::7/64']}}\n",
      "good.yaml");
  std::vector<std::string> order;
  for (const SessionSelector& s : ordered_selectors(c.sessions))
    order.push_back(c.sessions[s.session].name + " " + s.text);
  EXPECT_EQ(order, (std::vector<std::string>{"phone 02:00:00:00:00:07", "phone 2001:db8::/64",
                                             "vip 192.168.60.0/24", "low 192.168.61.0/24",
                                             "wifi 192.168.0.0/16", "wifi w"}));
  EXPECT_EQ(conf::mark_value(0, 0xf0000), 0x10000u);
  EXPECT_EQ(conf::mark_value(3, 0xf0000), 0x40000u);

  const std::string t = session_table(plan(c.sessions, {0, 1, 2, 3}, {}, 0));
  // A running connection keeps its session; a new one takes the first selector that matches.
  EXPECT_NE(t.find("ct state != new ct direction original ct mark and 0x000f0000 == 0x00020000 "
                   "meta mark set meta mark and 0xfff0ffff or 0x00020000 return"),
            std::string::npos)
      << t;
  const auto mac = t.find(
      "ct state new ether saddr 02:00:00:00:00:07 ct mark set ct mark and "
      "0xfff0ffff or 0x00040000 meta mark set meta mark and 0xfff0ffff or "
      "0x00040000 return");
  const auto v6 = t.find("ct state new ip6 saddr 2001:db8::/64");
  const auto vip = t.find("ct state new ip saddr 192.168.60.0/24");
  const auto dev = t.find(
      "ct state new iifname \"w\" ct mark set ct mark and 0xfff0ffff or "
      "0x00010000");
  ASSERT_NE(dev, std::string::npos) << t;
  EXPECT_LT(mac, v6);
  EXPECT_LT(v6, vip);
  EXPECT_LT(vip, dev);
  EXPECT_EQ(session_table(plan({}, {}, {}, 0)), "");
  EXPECT_EQ(t.find("postrouting"), std::string::npos);  // no uplink marks without a mask

  // With routing.mark_mask, each new connection's uplink goes into its mark too, and routes its
  // later packets (the P+1 rules) in the original direction.
  const std::string u = session_table(plan(c.sessions, {5, 1, 2, 3}, {"modem0", "phone0"}, 0xf000));
  EXPECT_NE(u.find("ct state != new ct direction original ct mark and 0x0000f000 == 0x00002000 "
                   "meta mark set meta mark and 0xffff0fff or 0x00002000\n"),
            std::string::npos)
      << u;
  EXPECT_NE(u.find("ct state new oifname \"phone0\" ct mark set ct mark and 0xffff0fff or "
                   "0x00002000"),
            std::string::npos)
      << u;
  EXPECT_NE(u.find("iifname \"w\" ct mark set ct mark and 0xfff0ffff or 0x00060000"),
            std::string::npos);  // session 0 in slot 5

  // An emergency: only its session's connections cross the cellular uplinks, both ways.
  ClassifierPlan e = plan(c.sessions, {0, 1, 2, 3}, {}, 0);
  e.emergency_slot = 1;
  e.cellular_ifaces = {"modem0", "modem1"};
  const std::string em = session_table(e);
  EXPECT_NE(em.find("oifname { \"modem0\", \"modem1\" } ct mark and 0x000f0000 != 0x00020000 drop"),
            std::string::npos)
      << em;
  EXPECT_NE(em.find("iifname { \"modem0\", \"modem1\" } ct mark and 0x000f0000 != 0x00020000 drop"),
            std::string::npos);
  EXPECT_EQ(t.find("emergency"), std::string::npos);

  // A session past its data limit: nothing of it is forwarded, either way.
  ClassifierPlan l = plan(c.sessions, {0, 1, 2, 3}, {}, 0);
  l.limited_slots = {2};
  const std::string lt = session_table(l);
  EXPECT_NE(lt.find("chain limits {\n    type filter hook forward priority -10; policy accept;\n"
                    "    ct mark and 0x000f0000 == 0x00030000 drop\n  }"),
            std::string::npos)
      << lt;
  EXPECT_EQ(t.find("limits"), std::string::npos);

  // The box's own applications: their sockets' owners, in an output route chain (a mark set
  // there routes the packet again), after the running connections' restore; the clients'
  // prerouting chain does not carry them.
  const conf::Config apps = load_string(MANAGED
                                        "  - {name: ota, match: {uids: [4242, root]}}\n"
                                        "  - {name: media, match: {gids: ['0']}, priority: 3}\n",
                                        "good.yaml");
  EXPECT_EQ(apps.sessions[0].match.uids, (std::vector<uint32_t>{4242, 0}));
  const std::string o = session_table(plan(apps.sessions, {0, 1}, {}, 0));
  const auto output = o.find("chain output {\n    type route hook output priority mangle;");
  ASSERT_NE(output, std::string::npos) << o;
  EXPECT_NE(o.find("ct state new meta skuid 4242 ct mark set ct mark and 0xfff0ffff or "
                   "0x00010000 meta mark set meta mark and 0xfff0ffff or 0x00010000 return",
                   output),
            std::string::npos)
      << o;
  EXPECT_LT(o.find("meta skuid 0 "), o.find("meta skgid 0 "));
  EXPECT_LT(o.find("ct state != new ct direction original", output), o.find("skuid", output));
  EXPECT_EQ(o.find("skuid"), o.find("skuid", output));
  EXPECT_EQ(t.find("chain output"), std::string::npos);
  EXPECT_EQ(refusal(MANAGED "  - {name: ota, match: {uids: [no-such-user-here]}}\n"),
            "bad.yaml:11:32: sessions[0].match.uids[0]: expected a user (a number or a name this "
            "system knows), got 'no-such-user-here'");
  EXPECT_EQ(
      refusal(MANAGED "  - {name: a, match: {uids: [7]}}\n  - {name: b, match: {uids: [7]}}\n"),
      "bad.yaml:12:22: sessions[1].match: uid 7 is also session 'a''s, with the same "
      "priority: give one of them a higher priority");

  // A slot beyond the mask's room writes nothing (never bits outside the mask).
  ClassifierPlan narrow = plan(c.sessions, {0, 1, 2, 15}, {}, 0);
  narrow.session_mask = 0x30000;  // three values
  const std::string n = session_table(narrow);
  EXPECT_EQ(n.find("ether saddr 02:00:00:00:00:07"), std::string::npos) << n;
  EXPECT_NE(n.find("ip saddr 192.168.60.0/24"), std::string::npos) << n;
}

// Cgroups: only those that exist are named (nft resolves the path when it loads the rule and
// refuses the table otherwise), deeper ones first, at their level below the cgroup2 root.
TEST(Sessions, CgroupsThatExistAreMatchedDeeperFirst) {
  const conf::Config c = load_string(MANAGED
                                     "  - {name: apps, match: {cgroups: [system.slice]}}\n"
                                     "  - {name: ota, match: {cgroups: [system.slice/ota.service, "
                                     "system.slice/maps.service]}}\n",
                                     "good.yaml");
  EXPECT_EQ(c.sessions[1].match.cgroups[0], "system.slice/ota.service");
  ClassifierPlan p = plan(c.sessions, {0, 1}, {}, 0);
  p.cgroups["system.slice"] = {"unified/system.slice", 1, 40};
  p.cgroups["system.slice/ota.service"] = {"unified/system.slice/ota.service", 2, 41};
  const std::string t = session_table(p);
  const auto output = t.find("chain output {");
  ASSERT_NE(output, std::string::npos) << t;
  const auto ota = t.find(
      "ct state new socket cgroupv2 level 2 \"unified/system.slice/ota.service\" "
      "ct mark set ct mark and 0xfff0ffff or 0x00020000",
      output);
  const auto slice = t.find("socket cgroupv2 level 1 \"unified/system.slice\"", output);
  EXPECT_NE(ota, std::string::npos) << t;
  EXPECT_LT(ota, slice) << "the service before its slice";
  EXPECT_EQ(t.find("maps.service"), std::string::npos) << "a cgroup that does not exist yet";
  p.cgroups.clear();
  EXPECT_EQ(session_table(p).find("cgroupv2"), std::string::npos);

  EXPECT_EQ(refusal(MANAGED "  - {name: a, match: {cgroups: [/system.slice]}}\n"),
            "bad.yaml:11:33: sessions[0].match.cgroups[0]: expected a cgroup path below the "
            "cgroup2 root, without a leading or trailing '/' (\"system.slice/ota.service\"), got "
            "'/system.slice'");
  EXPECT_NE(refusal(MANAGED "  - {name: a, match: {cgroups: ['a/../b']}}\n").find("'..'"),
            std::string::npos);
  EXPECT_NE(refusal(MANAGED "  - {name: a, match: {cgroups: ['a\"b']}}\n").find("only letters"),
            std::string::npos);
  EXPECT_NE(refusal(MANAGED "  - {name: a, match: {cgroups: [x]}, limit_bytes: 1000}\n")
                .find("cgroups (the box's own, local traffic) cannot have one"),
            std::string::npos);
}

TEST(CgroupPaths, FindTheCgroup2MountAndWhereNftLooks) {
  const std::string hybrid =
      "25 30 0:23 / /sys rw,nosuid shared:7 - sysfs sysfs rw\n"
      "31 25 0:26 / /sys/fs/cgroup ro shared:9 - tmpfs tmpfs ro,mode=755\n"
      "32 31 0:27 / /sys/fs/cgroup/unified rw shared:10 - cgroup2 cgroup2 rw,nsdelegate\n";
  EXPECT_EQ(CgroupPaths::cgroup2_mount(hybrid), "/sys/fs/cgroup/unified");
  EXPECT_EQ(CgroupPaths::cgroup2_mount("40 1 0:9 /sub /mnt rw - cgroup2 cgroup2 rw\n"), "")
      << "a bind mount of a sub-tree is not the root";
  EXPECT_EQ(CgroupPaths::cgroup2_mount("garbage\n"), "");
  const std::string dir = ::testing::TempDir() + "/tp_mountinfo";
  auto with = [&](const std::string& text) {
    FILE* f = std::fopen(dir.c_str(), "w");
    std::fputs(text.c_str(), f);
    std::fclose(f);
    return CgroupPaths(dir);
  };
  EXPECT_EQ(with(hybrid).root(), "/sys/fs/cgroup/unified");
  EXPECT_EQ(with(hybrid).error(), "");
  EXPECT_FALSE(with(hybrid).resolve("no-such-cgroup-tetherpath-test"));
  EXPECT_NE(with("1 0 0:1 / /elsewhere rw - cgroup2 cgroup2 rw\n").error().find("not at or under"),
            std::string::npos);
  EXPECT_EQ(with("").error(), "no cgroup2 hierarchy is mounted");
  std::remove(dir.c_str());
}

conf::SessionConfig named(const char* name, const char* uplink) {
  conf::SessionConfig s;
  s.name = name;
  s.uplinks = {uplink};
  return s;
}

// A session keeps its slot (its mark) by name across updates: running connections' marks keep
// naming their session whatever the order, additions or removals.
TEST(Sessions, SlotsAreStableByName) {
  SessionSet set;
  EXPECT_EQ(set.assign({named("a", "modem"), named("b", "phone")}), (std::set<std::size_t>{0, 1}));
  EXPECT_EQ(set.assign({named("c", "modem"), named("b", "phone"), named("a", "modem")}),
            std::set<std::size_t>{2});
  EXPECT_EQ(set.slot(0), 2u);
  EXPECT_EQ(set.slot(1), 1u);
  EXPECT_EQ(set.slot(2), 0u);
  // b changed, a gone, d new: d takes a slot nobody had (a's connections are not d's).
  EXPECT_EQ(set.assign({named("c", "modem"), named("b", "modem"), named("d", "phone")}),
            (std::set<std::size_t>{0, 1, 3}));
  EXPECT_EQ(set.slot(2), 3u);
  EXPECT_EQ(set.slots(), (std::set<std::size_t>{1, 2, 3}));
  EXPECT_TRUE(set.assign({named("c", "modem"), named("b", "modem"), named("d", "phone")}).empty());
  // A mask with room for four: e takes 0, a's old slot, the only one left.
  EXPECT_EQ(
      set.assign(
          {named("c", "modem"), named("b", "modem"), named("d", "phone"), named("e", "phone")}, 4),
      std::set<std::size_t>{0});
  EXPECT_EQ(set.slot(3), 0u);
}

}  // namespace
}  // namespace tp
