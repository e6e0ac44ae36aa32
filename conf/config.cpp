#include "config.hpp"

#include "packet_buffers.hpp"
#include "yaml_field.hpp"

#include <arpa/inet.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace tp::conf {
namespace {

constexpr uint64_t kMaxBytes = uint64_t{1} << 60;

bool valid_ifname(const std::string& n) {
  if (n.empty() || n.size() > 15) return false;
  for (char c : n)
    if (c == '/' || c == ':' || c == ' ' || c == '\0') return false;
  return true;
}

PortConfig parse_port(const Field& f, Engine engine) {
  f.only_keys(
      {"name", "role", "engine", "device", "hook", "queues", "mtu", "mac", "persist_enabled"});
  PortConfig p;
  auto name = f.child("name");
  if (!name) f.fail("missing key 'name'");
  p.name = name->string();
  if (!valid_ifname(p.name))
    name->fail("expected an interface name of 1 to 15 characters, got '" + p.name + "'");
  auto role = f.child("role");
  if (!role) f.fail("missing key 'role'");
  p.role = role->choice<Role>({{"upstream", Role::upstream}, {"downstream", Role::downstream}});
  if (auto v = f.child("persist_enabled")) p.persist_enabled = v->boolean();
  if (auto e = f.child("engine")) {
    const Engine mine = e->choice<Engine>({{"dpdk", Engine::dpdk}, {"kernel", Engine::kernel}});
    if (mine != engine)
      e->fail("port " + p.name + " asks for the " + to_string(mine) +
              " engine but dataplane.engine is " + to_string(engine) +
              ": mixing engines is not supported (one engine forwards for every port; a flow "
              "between a DPDK port and a kernel-engine port would cross the kernel anyway)");
  }
  if (engine == Engine::kernel) {
    // The port is the kernel's interface as it is: its MAC, MTU and queues are the kernel's.
    for (const char* dpdk_only : {"device", "queues", "mtu", "mac"})
      if (auto d = f.child(dpdk_only))
        d->fail(std::string("a DPDK port setting; a kernel-engine port is the existing kernel "
                            "interface named by 'name' (remove '") +
                dpdk_only + "', or set dataplane.engine: dpdk)");
    if (auto h = f.child("hook"))
      p.hook = h->choice<Hook>({{"auto", Hook::automatic}, {"xdp", Hook::xdp}, {"tc", Hook::tc}});
    return p;
  }
  if (auto h = f.child("hook"))
    h->fail("a kernel-engine setting (dataplane.engine: kernel); DPDK ports have no hook");
  auto device = f.child("device");
  if (!device) f.fail("missing key 'device'");
  p.device = device->string();
  if (p.device.empty()) device->fail("expected a PCI address or a DPDK vdev string");
  if (auto q = f.child("queues")) p.queues = q->integer<uint16_t>(1, 16);
  if (auto m = f.child("mtu")) p.mtu = m->integer<uint16_t>(576, 9000);
  if (auto m = f.child("mac")) p.mac = parse_mac(*m);
  return p;
}

DataplaneConfig parse_dataplane(const Field& f) {
  f.only_keys({"engine", "main_lcore", "worker_lcores", "burst", "memory_mb", "hugepages",
               "flow_capacity", "idle_sleep_max_us", "exception_ring_size"});
  DataplaneConfig d;
  if (auto v = f.child("engine"))
    d.engine = v->choice<Engine>({{"dpdk", Engine::dpdk}, {"kernel", Engine::kernel}});
  if (d.engine == Engine::kernel) {
    for (const char* dpdk_only : {"main_lcore", "worker_lcores", "burst", "memory_mb", "hugepages",
                                  "idle_sleep_max_us", "exception_ring_size"})
      if (auto v = f.child(dpdk_only))
        v->fail(
            "a DPDK setting; the kernel engine has no EAL, worker lcores or packet buffers "
            "(it forwards in the kernel's receive path)");
    d.worker_lcores.clear();
  }
  if (auto v = f.child("main_lcore")) d.main_lcore = v->integer<unsigned>(0, 127);
  if (auto v = f.child("worker_lcores")) {
    if (!v->node.IsSequence() || v->node.size() == 0)
      v->fail("expected a non-empty list of lcore numbers");
    d.worker_lcores.clear();
    for (std::size_t i = 0; i < v->node.size(); ++i) {
      const Field e = v->element(i);
      const unsigned lc = e.integer<unsigned>(0, 127);
      for (unsigned seen : d.worker_lcores)
        if (seen == lc) e.fail("lcore " + std::to_string(lc) + " is listed twice");
      d.worker_lcores.push_back(lc);
    }
  }
  for (unsigned lc : d.worker_lcores)
    if (lc == d.main_lcore)
      f.fail("main_lcore " + std::to_string(lc) + " cannot also be a worker lcore");
  if (auto v = f.child("burst")) d.burst = v->integer<uint16_t>(1, 64);
  if (auto v = f.child("memory_mb")) d.memory_mb = v->integer<unsigned>(64, 65536);
  if (auto v = f.child("hugepages"))
    d.hugepages = v->choice<Hugepages>(
        {{"auto", Hugepages::automatic}, {"on", Hugepages::on}, {"off", Hugepages::off}});
  if (auto v = f.child("flow_capacity")) d.flow_capacity = v->integer<uint32_t>(64, 16u << 20);
  if (auto v = f.child("idle_sleep_max_us")) d.idle_sleep_max_us = v->integer<uint32_t>(0, 100000);
  if (auto v = f.child("exception_ring_size")) {
    d.exception_ring_size = v->integer<uint32_t>(64, 65536);
    if (d.exception_ring_size & (d.exception_ring_size - 1)) v->fail("expected a power of two");
  }
  return d;
}

OffloadConfig parse_offload(const Field& f) {
  f.only_keys({"enabled", "protocols", "ipv6", "keepalive_interval_s", "no_offload_mark",
               "no_offload_mask", "route_mark_mask", "conntrack_rcvbuf_kb",
               "conntrack_rcvbuf_max_kb"});
  OffloadConfig o;
  if (auto v = f.child("enabled")) o.enabled = v->boolean();
  if (auto v = f.child("protocols")) {
    if (!v->node.IsSequence()) v->fail("expected a list of tcp, udp, icmp");
    o.tcp = o.udp = o.icmp = false;
    for (std::size_t i = 0; i < v->node.size(); ++i) {
      const Field e = v->element(i);
      const int p = e.choice<int>({{"tcp", 0}, {"udp", 1}, {"icmp", 2}});
      (p == 0 ? o.tcp : p == 1 ? o.udp : o.icmp) = true;
    }
  }
  if (auto v = f.child("ipv6"))
    o.ipv6 = v->choice<Ipv6Mode>(
        {{"conntrack", Ipv6Mode::conntrack}, {"neighbours", Ipv6Mode::neighbours}});
  if (auto v = f.child("keepalive_interval_s"))
    o.keepalive_interval_s = v->integer<uint32_t>(1, 3600);
  if (auto v = f.child("no_offload_mark")) o.no_offload_mark = v->integer<uint32_t>(0, UINT32_MAX);
  if (auto v = f.child("no_offload_mask")) o.no_offload_mask = v->integer<uint32_t>(0, UINT32_MAX);
  if (auto v = f.child("route_mark_mask")) o.route_mark_mask = v->integer<uint32_t>(0, UINT32_MAX);
  if (auto v = f.child("conntrack_rcvbuf_kb"))
    o.conntrack_rcvbuf_kb = v->integer<uint32_t>(4, 1 << 20);
  if (auto v = f.child("conntrack_rcvbuf_max_kb"))
    o.conntrack_rcvbuf_max_kb = v->integer<uint32_t>(4, 1 << 20);
  if (o.conntrack_rcvbuf_max_kb < o.conntrack_rcvbuf_kb)
    f.fail("conntrack_rcvbuf_max_kb must be at least conntrack_rcvbuf_kb");
  return o;
}

UpstreamConfig parse_upstream(const Field& f, const std::vector<PortConfig>& ports) {
  f.only_keys({"iface", "ipv4_addr", "ipv4_gateway", "ipv6_gateways"});
  UpstreamConfig u;
  auto iface = f.child("iface");
  if (!iface) f.fail("missing key 'iface'");
  u.iface = iface->port_name(ports, Role::upstream);
  if (auto v = f.child("ipv4_addr")) u.ipv4_addr = v->address(AF_INET);
  if (auto v = f.child("ipv4_gateway")) u.ipv4_gateway = v->address(AF_INET);
  if (auto v = f.child("ipv6_gateways"))
    v->each([&](const Field& e) { u.ipv6_gateways.push_back(e.address(AF_INET6)); });
  if (!u.ipv4_addr && !u.ipv4_gateway && u.ipv6_gateways.empty())
    f.fail("expected ipv4_addr and ipv4_gateway, ipv6_gateways, or both");
  return u;
}

TrackConfig parse_track(const Field& f) {
  f.only_keys({"targets", "method", "interval_ms", "timeout_ms", "reliability", "down", "up",
               "max_loss_pct", "max_rtt_ms"});
  TrackConfig t;
  if (auto v = f.child("method")) t.method = named_choice(*v, track_methods());
  auto targets = f.child("targets");
  if (!targets) f.fail("missing key 'targets' (the addresses to probe over this uplink)");
  targets->each([&](const Field& e) {
    t.targets.push_back(e.address());
    if (t.method == TrackMethod::arp && t.targets.back().family != AF_INET)
      e.fail("ARP probes need IPv4 neighbours (the uplink's gateway)");
  });
  if (t.targets.empty()) targets->fail("expected at least one address");
  if (t.targets.size() > 8) targets->fail("at most 8 targets");
  if (auto v = f.child("interval_ms")) t.interval_ms = v->integer<uint32_t>(100, 600000);
  t.timeout_ms = std::min<uint32_t>(t.interval_ms, 1000);
  if (auto v = f.child("timeout_ms")) {
    t.timeout_ms = v->integer<uint32_t>(10, 600000);
    if (t.timeout_ms > t.interval_ms) v->fail("expected at most interval_ms");
  }
  if (auto v = f.child("reliability")) {
    t.reliability = v->integer<uint32_t>(1, 8);
    if (t.reliability > t.targets.size()) v->fail("expected at most the number of targets");
  }
  if (auto v = f.child("down")) t.down = v->integer<uint32_t>(1, 100);
  if (auto v = f.child("up")) t.up = v->integer<uint32_t>(1, 100);
  if (auto v = f.child("max_loss_pct")) t.max_loss_pct = v->integer<uint32_t>(0, 100);
  if (auto v = f.child("max_rtt_ms")) t.max_rtt_ms = v->integer<uint32_t>(0, 600000);
  return t;
}

RoutingConfig parse_routing(const Field& f, const OffloadConfig& offload) {
  f.only_keys({"manage", "table", "priority", "mark_mask", "masquerade", "failback_s", "sticky_s",
               "session_mark_mask"});
  RoutingConfig r;
  if (auto v = f.child("manage")) r.manage = v->boolean();
  // Tables 253 to 255 are the kernel's default, main and local; 0 is "unspecified".
  if (auto v = f.child("table")) {
    r.table = v->integer<uint32_t>(1, 0x7fff0000);
    if (r.table >= 250 && r.table <= 255) v->fail("tables 250 to 255 are reserved (main, local)");
  }
  if (auto v = f.child("priority")) r.priority = v->integer<uint32_t>(1, 32700);
  if (auto v = f.child("mark_mask")) {
    r.mark_mask = v->integer<uint32_t>(0, UINT32_MAX);
    if (r.mark_mask & offload.no_offload_mask)
      v->fail("overlaps offload.no_offload_mask: the marks must not collide");
    const uint32_t bits = mark_values(r.mark_mask);
    if (r.mark_mask && (bits & (bits + 1)) != 0) v->fail("expected contiguous bits");
    if (r.mark_mask && bits < 3) v->fail("expected at least 2 bits (uplink i is value i + 1)");
  }
  if (auto v = f.child("masquerade")) r.masquerade = v->boolean();
  if (auto v = f.child("failback_s")) r.failback_s = v->integer<uint32_t>(0, 86400);
  if (auto v = f.child("sticky_s")) r.sticky_s = v->integer<uint32_t>(0, 86400);
  if (auto v = f.child("session_mark_mask")) {
    r.session_mark_mask = v->integer<uint32_t>(0, UINT32_MAX);
    const uint32_t bits = mark_values(r.session_mark_mask);
    if ((bits & (bits + 1)) != 0) v->fail("expected contiguous bits");
    if (r.session_mark_mask & r.mark_mask) v->fail("overlaps routing.mark_mask");
    if (r.session_mark_mask & offload.no_offload_mask) v->fail("overlaps offload.no_offload_mask");
    if (r.session_mark_mask & offload.route_mark_mask)
      v->fail("overlaps offload.route_mark_mask (the integrator's restored marks)");
  }
  // The uplinks' tables (T to T+64) and the sessions' (T+128 and up, one per mark value) must
  // not reach the kernel's own.
  const uint64_t t = r.table;
  const uint64_t slots = mark_values(r.session_mark_mask);
  const auto reserved = [](uint64_t lo, uint64_t hi) { return lo <= 255 && hi >= 250; };
  if (reserved(t, t + 64) || (slots && reserved(t + 128, t + 128 + slots - 1))) {
    const auto at = f.child("table");
    (at ? *at : f)
        .fail("tables " + std::to_string(t) +
              " and up (uplinks: T to T+64, sessions: "
              "T+128 and up) would include 250 to 255 (main, local): choose another");
  }
  return r;
}

std::vector<UplinkConfig> parse_uplinks(const Field& f, const std::vector<PortConfig>& ports,
                                        const std::optional<UpstreamConfig>& upstream) {
  std::vector<UplinkConfig> out;
  f.each([&](const Field& e) {
    e.only_keys({"name", "iface", "kind", "metered", "roaming", "metric", "weight", "ipv4_addr",
                 "ipv4_gateway", "ipv6_gateways", "ipv6_prefixes", "track"});
    UplinkConfig u;
    auto name = e.child("name");
    auto iface = e.child("iface");
    if (!name) e.fail("missing key 'name'");
    if (!iface) e.fail("missing key 'iface'");
    u.name = name->string();
    if (!valid_uplink_name(u.name)) name->fail("expected 1 to 32 of A-Z a-z 0-9 _ -");
    u.iface = iface->port_name(ports, Role::upstream);
    for (const auto& seen : out) {
      if (seen.name == u.name) name->fail("uplink '" + u.name + "' is listed twice");
      if (seen.iface == u.iface)
        iface->fail("'" + u.iface + "' is already uplink '" + seen.name + "'");
    }
    if (upstream && upstream->iface == u.iface)
      iface->fail("'" + u.iface + "' is already the upstream (set_upstream's single uplink)");
    if (auto v = e.child("kind")) u.kind = named_choice(*v, uplink_kinds());
    if (auto v = e.child("metered")) u.metered = v->boolean();
    if (auto v = e.child("roaming")) u.roaming = named_choice(*v, roaming_states());
    if (auto v = e.child("metric")) u.metric = v->integer<uint32_t>(0, UINT32_MAX);
    if (auto v = e.child("weight")) u.weight = v->integer<uint32_t>(1, 256);
    if (auto v = e.child("ipv4_addr")) u.ipv4_addr = v->address(AF_INET);
    if (auto v = e.child("ipv4_gateway")) u.ipv4_gateway = v->address(AF_INET);
    if (auto v = e.child("ipv6_gateways"))
      v->each([&](const Field& g) { u.ipv6_gateways.push_back(g.address(AF_INET6)); });
    if (auto v = e.child("ipv6_prefixes")) {
      v->each([&](const Field& p) {
        const Prefix mine = p.prefix();
        if (const std::string why = bad_uplink_prefix(mine); !why.empty()) p.fail(why);
        for (const Prefix& q : u.ipv6_prefixes)
          if (mine.overlaps(q)) p.fail("overlaps " + q.str() + " listed before");
        for (const auto& seen : out)
          for (const Prefix& q : seen.ipv6_prefixes)
            if (mine.overlaps(q)) p.fail("overlaps " + q.str() + " of uplink '" + seen.name + "'");
        u.ipv6_prefixes.push_back(mine);
      });
      if (u.ipv6_prefixes.size() > 8) v->fail("at most 8 prefixes");
    }
    if (auto v = e.child("track")) u.track = parse_track(*v);
    out.push_back(u);
  });
  return out;
}

std::vector<DownstreamConfig> parse_downstreams(const Field& f,
                                                const std::vector<PortConfig>& ports) {
  std::vector<DownstreamConfig> out;
  f.each([&](const Field& e) {
    e.only_keys({"iface", "prefix"});
    auto iface = e.child("iface");
    auto prefix = e.child("prefix");
    if (!iface) e.fail("missing key 'iface'");
    if (!prefix) e.fail("missing key 'prefix'");
    DownstreamConfig d{iface->port_name(ports, Role::downstream), prefix->prefix()};
    for (const auto& seen : out)
      if (seen == d) e.fail("downstream " + d.iface + " " + d.prefix.str() + " is listed twice");
    out.push_back(d);
  });
  return out;
}

LimitsConfig parse_limits(const Field& f, const std::vector<PortConfig>& ports) {
  f.only_keys({"persist_interval_s", "upstreams"});
  LimitsConfig l;
  if (auto v = f.child("persist_interval_s")) l.persist_interval_s = v->integer<uint32_t>(1, 3600);
  if (auto v = f.child("upstreams"))
    v->each([&](const Field& e) {
      e.only_keys({"iface", "warning_bytes", "limit_bytes"});
      auto iface = e.child("iface");
      auto limit = e.child("limit_bytes");
      if (!iface) e.fail("missing key 'iface'");
      if (!limit) e.fail("missing key 'limit_bytes'");
      LimitConfig c;
      c.iface = iface->port_name(ports, Role::upstream);
      c.limit_bytes = limit->integer<uint64_t>(0, kMaxBytes);
      c.warning_bytes = c.limit_bytes;
      if (auto w = e.child("warning_bytes")) c.warning_bytes = w->integer<uint64_t>(0, kMaxBytes);
      for (const auto& seen : l.upstreams)
        if (seen.iface == c.iface) iface->fail("a limit for " + c.iface + " is already set");
      l.upstreams.push_back(c);
    });
  return l;
}

KernelEngineConfig parse_kernel_engine(const Field& f) {
  f.only_keys({"bpffs", "keep_forwarding_on_exit"});
  KernelEngineConfig k;
  if (auto v = f.child("bpffs")) {
    k.bpffs = v->string();
    if (k.bpffs.empty() || k.bpffs[0] != '/') v->fail("expected an absolute path (a bpffs mount)");
  }
  if (auto v = f.child("keep_forwarding_on_exit")) k.keep_forwarding_on_exit = v->boolean();
  return k;
}

ApiConfig parse_api(const Field& f) {
  f.only_keys({"socket", "group", "control_group", "emergency_group", "mode", "max_clients",
               "max_subscribers", "idle_timeout_s"});
  ApiConfig a;
  if (auto v = f.child("socket")) {
    a.socket = v->string();
    if (a.socket.empty() || a.socket[0] != '/' || a.socket.size() >= 108)
      v->fail("expected an absolute path shorter than 108 characters");
  }
  if (auto v = f.child("group")) a.group = v->string();
  if (auto v = f.child("control_group")) a.control_group = v->string();
  if (auto v = f.child("emergency_group")) a.emergency_group = v->string();
  if (auto v = f.child("mode")) a.mode = v->integer<uint32_t>(0, 0777);
  if (auto v = f.child("max_clients")) a.max_clients = v->integer<uint32_t>(1, 1024);
  if (auto v = f.child("max_subscribers")) a.max_subscribers = v->integer<uint32_t>(0, 1024);
  if (auto v = f.child("idle_timeout_s")) a.idle_timeout_s = v->integer<uint32_t>(0, 86400);
  if (a.max_subscribers > a.max_clients)
    f.fail("max_subscribers (" + std::to_string(a.max_subscribers) +
           ") cannot exceed max_clients (" + std::to_string(a.max_clients) + ")");
  return a;
}

MetricsConfig parse_metrics(const Field& f) {
  f.only_keys({"enabled", "address", "port", "max_connections"});
  MetricsConfig m;
  if (auto v = f.child("enabled")) m.enabled = v->boolean();
  if (auto v = f.child("address")) {
    m.address = v->address();
    const bool loopback = m.address.family == AF_INET ? m.address.bytes[0] == 127
                                                      : m.address == *IpAddr::parse("::1");
    if (!loopback) v->fail("expected a loopback address (metrics are not served off the box)");
  }
  if (auto v = f.child("port")) m.port = v->integer<uint16_t>(1, 65535);
  if (auto v = f.child("max_connections")) m.max_connections = v->integer<uint32_t>(1, 1024);
  return m;
}

VehicleConfig parse_vehicle(const Field& f, const Config& c) {
  f.only_keys({"garage", "silent_mode"});
  VehicleConfig v;
  if (auto g = f.child("garage")) {
    g->only_keys({"sessions"});
    if (auto s = g->child("sessions")) {
      s->each([&](const Field& e) {
        const std::string name = e.string();
        const bool known = std::any_of(c.sessions.begin(), c.sessions.end(),
                                       [&](const SessionConfig& x) { return x.name == name; });
        if (!known) e.fail("no session '" + name + "' in this file's sessions");
        v.garage_sessions.push_back(name);
      });
      // Who may pass is told apart by the session's mark: the classifier writes it.
      if (!c.routing.manage || !c.routing.session_mark_mask)
        s->fail("garage sessions need routing.manage and routing.session_mark_mask");
    }
  }
  if (auto m = f.child("silent_mode")) {
    m->only_keys({"file", "garage", "ports_off"});
    if (auto x = m->child("file")) {
      v.silent_file = x->string();
      if (!v.silent_file.empty() && v.silent_file[0] != '/')
        x->fail("expected an absolute path, or \"\" to watch none");
    }
    if (auto x = m->child("garage")) {
      v.silent_garage = x->boolean();
      if (v.silent_garage && v.garage_sessions.empty())
        x->fail("silent mode's garage needs vehicle.garage.sessions");
    }
    if (auto x = m->child("ports_off"))
      x->each([&](const Field& e) {
        const std::string name = e.string();
        if (!c.port(name)) e.fail("no port '" + name + "'");
        v.silent_ports.push_back(name);
      });
  }
  return v;
}

// Board profiles (hw/boards/*.yaml) map slot names to devices, so a configuration can say
// "board:modem" and stay the same across boards.
std::map<std::string, std::string> load_board(const Field& f, const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    f.fail("cannot open board profile " + path);
  } catch (const YAML::ParserException& e) {
    f.fail("board profile " + path + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  Field top{root, "", path};
  top.only_keys({"name", "description", "devices"});
  auto devices = top.child("devices");
  if (!devices || !devices->node.IsMap()) top.fail("missing key 'devices' (a map of slot: device)");
  std::map<std::string, std::string> out;
  for (const auto& kv : devices->node) {
    const Field d{kv.second, "devices." + kv.first.as<std::string>(), path};
    out[kv.first.as<std::string>()] = d.string();
  }
  return out;
}

std::string sibling_path(const std::string& file, const std::string& rel) {
  if (!rel.empty() && rel[0] == '/') return rel;
  const std::size_t slash = file.rfind('/');
  return slash == std::string::npos ? rel : file.substr(0, slash + 1) + rel;
}

Config parse(const YAML::Node& root, const std::string& file) {
  Field top{root, "", file};
  if (!root.IsDefined() || root.IsNull()) top.fail("the file is empty");
  top.only_keys({"board", "ports", "dataplane", "kernel_engine", "offload", "upstream", "uplinks",
                 "routing", "sessions", "downstreams", "local_prefixes", "limits", "api", "metrics",
                 "vehicle", "signed_config", "state_dir", "run_dir"});
  Config c;
  c.source = file;
  // First: which engine decides what a port may say.
  if (auto d = top.child("dataplane")) c.dataplane = parse_dataplane(*d);
  if (auto k = top.child("kernel_engine")) {
    if (c.dataplane.engine != Engine::kernel)
      k->fail("applies to dataplane.engine: kernel (this configuration runs the DPDK engine)");
    c.kernel_engine = parse_kernel_engine(*k);
  }
  auto ports = top.child("ports");
  if (!ports) top.fail("missing key 'ports'");
  if (!ports->node.IsSequence() || ports->node.size() == 0)
    ports->fail("expected a non-empty list of ports");
  if (ports->node.size() > 16) ports->fail("at most 16 ports are supported");
  std::map<std::string, std::string> board;
  if (auto b = top.child("board")) {
    c.board = sibling_path(file, b->string());
    board = load_board(*b, c.board);
  }
  std::set<std::string> names, devices;
  int upstreams = 0;
  for (std::size_t i = 0; i < ports->node.size(); ++i) {
    const Field pf = ports->element(i);
    PortConfig p = parse_port(pf, c.dataplane.engine);
    if (p.device.rfind("board:", 0) == 0) {
      const Field dev = *pf.child("device");
      const std::string slot = p.device.substr(6);
      if (c.board.empty()) dev.fail("'" + p.device + "' needs a top-level 'board' profile");
      auto it = board.find(slot);
      if (it == board.end()) {
        std::string have;
        for (const auto& [k, v] : board) have += have.empty() ? k : ", " + k;
        dev.fail("board profile " + c.board + " has no device '" + slot + "' (it has: " + have +
                 ")");
      }
      p.device = it->second;
    }
    if (!names.insert(p.name).second) pf.fail("duplicate port name '" + p.name + "'");
    if (!p.device.empty() && !devices.insert(p.device).second)
      pf.fail("device '" + p.device + "' is used by two ports");
    upstreams += p.role == Role::upstream;
    c.ports.push_back(std::move(p));
  }
  if (upstreams == 0) ports->fail("expected at least one port with role upstream");
  const std::string why =
      c.dataplane.engine == Engine::dpdk ? packet_buffers_shortfall(c) : std::string();
  if (!why.empty()) {
    const auto d = top.child("dataplane");
    if (const auto m = d ? d->child("memory_mb") : std::nullopt) m->fail(why);
    top.fail("dataplane.memory_mb (the default): " + why);
  }
  if (auto o = top.child("offload")) c.offload = parse_offload(*o);
  if (auto u = top.child("upstream")) c.upstream = parse_upstream(*u, c.ports);
  if (auto u = top.child("uplinks")) c.uplinks = parse_uplinks(*u, c.ports, c.upstream);
  if (auto r = top.child("routing")) {
    c.routing = parse_routing(*r, c.offload);
    const uint32_t values = mark_values(c.routing.mark_mask);
    if (c.routing.mark_mask && c.uplinks.size() > values)
      r->child("mark_mask")
          ->fail("too few bits for " + std::to_string(c.uplinks.size()) + " uplinks");
  }
  if (auto d = top.child("downstreams")) c.downstreams = parse_downstreams(*d, c.ports);
  if (auto s = top.child("sessions")) c.sessions = parse_sessions(*s, c);
  if (auto l = top.child("local_prefixes"))
    l->each([&](const Field& e) { c.local_prefixes.push_back(e.prefix()); });
  if (auto l = top.child("limits")) c.limits = parse_limits(*l, c.ports);
  if (auto a = top.child("api")) c.api = parse_api(*a);
  if (auto m = top.child("metrics")) c.metrics = parse_metrics(*m);
  if (auto v = top.child("vehicle")) c.vehicle = parse_vehicle(*v, c);
  if (auto s = top.child("signed_config")) c.signed_config = parse_signed_config(*s);
  for (auto [key, dir] : {std::pair{"state_dir", &c.state_dir}, {"run_dir", &c.run_dir}})
    if (auto s = top.child(key)) {
      *dir = s->string();
      if (dir->empty() || (*dir)[0] != '/') s->fail("expected an absolute path");
    }
  if (c.api.socket.empty()) c.api.socket = c.run_dir + "/api.sock";
  return c;
}

}  // namespace

Config load_string(const std::string& yaml, const std::string& source_name) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::ParserException& e) {
    std::ostringstream s;
    s << source_name << ':' << e.mark.line + 1 << ':' << e.mark.column + 1 << ": " << e.msg;
    throw ConfigError(s.str());
  }
  try {
    return parse(root, source_name);
  } catch (const ConfigError&) {
    throw;
  } catch (const YAML::Exception& e) {
    // A shape the checks did not foresee (a map used as a key, say): still a refusal that names
    // the file, never an exception that takes the daemon down (found by fuzz_config).
    std::ostringstream s;
    s << source_name;
    if (!e.mark.is_null()) s << ':' << e.mark.line + 1 << ':' << e.mark.column + 1;
    s << ": " << e.msg;
    throw ConfigError(s.str());
  }
}

Config load_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path + ": cannot open the file");
  std::stringstream buf;
  buf << in.rdbuf();
  return load_string(buf.str(), path);
}

std::string live_change_refusal(const Config& running, const Config& next) {
  if (running.ports != next.ports) return "ports cannot change while running: restart tetherpath";
  if (running.dataplane != next.dataplane)
    return "dataplane settings (lcores, burst, memory, capacity) cannot change while running: "
           "restart tetherpath";
  if (running.kernel_engine != next.kernel_engine)
    return "kernel_engine settings cannot change while running: restart tetherpath";
  if (running.state_dir != next.state_dir) return "state_dir cannot change while running";
  if (running.run_dir != next.run_dir) return "run_dir cannot change while running";
  if (running.api != next.api) return "the api section cannot change while running";
  if (running.metrics != next.metrics) return "the metrics section cannot change while running";
  if (running.offload.ipv6 != next.offload.ipv6)
    return "offload.ipv6 cannot change while running: restart tetherpath";
  if (running.offload.conntrack_rcvbuf_kb != next.offload.conntrack_rcvbuf_kb ||
      running.offload.conntrack_rcvbuf_max_kb != next.offload.conntrack_rcvbuf_max_kb)
    return "conntrack receive buffer sizes cannot change while running";
  return "";
}

const std::vector<std::pair<const char*, UplinkKind>>& uplink_kinds() {
  static const std::vector<std::pair<const char*, UplinkKind>> k = {
      {"cellular", UplinkKind::cellular},
      {"wifi", UplinkKind::wifi},
      {"ethernet", UplinkKind::ethernet},
      {"usb", UplinkKind::usb},
      {"bluetooth", UplinkKind::bluetooth}};
  return k;
}

const std::vector<std::pair<const char*, Roaming>>& roaming_states() {
  static const std::vector<std::pair<const char*, Roaming>> r = {
      {"home", Roaming::home},
      {"national", Roaming::national},
      {"international", Roaming::international}};
  return r;
}

const std::vector<std::pair<const char*, TrackMethod>>& track_methods() {
  static const std::vector<std::pair<const char*, TrackMethod>> m = {{"ping", TrackMethod::ping},
                                                                     {"arp", TrackMethod::arp}};
  return m;
}

std::string bad_uplink_prefix(const Prefix& p) {
  if (p.addr.family != AF_INET6) return "expected an IPv6 prefix";
  if (p.len < 16) return "expected a /16 or longer";
  const uint8_t first = p.addr.bytes[0];
  if ((first & 0xe0) != 0x20 && (first & 0xfe) != 0xfc)
    return "expected a global (2000::/3) or unique local (fc00::/7) prefix";
  return "";
}

bool valid_uplink_name(const std::string& name) {
  if (name.empty() || name.size() > 32) return false;
  for (const char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') return false;
  return true;
}

template <class E>
std::string name_of(const std::vector<std::pair<const char*, E>>& names, E v) {
  for (const auto& [n, e] : names)
    if (e == v) return n;
  return "?";
}
const std::vector<std::pair<const char*, Connection>>& connections() {
  static const std::vector<std::pair<const char*, Connection>> c = {
      {"internet", Connection::internet}, {"local", Connection::local}};
  return c;
}

const std::vector<std::pair<const char*, RoamingPolicy>>& roaming_policies() {
  static const std::vector<std::pair<const char*, RoamingPolicy>> r = {
      {"forbidden", RoamingPolicy::forbidden},
      {"national", RoamingPolicy::national},
      {"international", RoamingPolicy::international},
      {"always", RoamingPolicy::always}};
  return r;
}

const std::vector<std::pair<const char*, ExistingFlows>>& existing_flows_choices() {
  static const std::vector<std::pair<const char*, ExistingFlows>> e = {
      {"reset", ExistingFlows::reset}, {"keep", ExistingFlows::keep}};
  return e;
}

std::string to_string(ExistingFlows e) { return name_of(existing_flows_choices(), e); }

bool roaming_allows(RoamingPolicy policy, Roaming state) {
  switch (policy) {
    case RoamingPolicy::forbidden:
      return state == Roaming::home;
    case RoamingPolicy::national:
      return state != Roaming::international;
    default:
      return true;
  }
}

std::string to_string(UplinkKind k) { return name_of(uplink_kinds(), k); }
std::optional<std::array<uint8_t, 6>> parse_mac_text(const std::string& text) {
  std::array<uint8_t, 6> mac{};
  unsigned v[6];
  char extra;
  if (std::sscanf(text.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4],
                  &v[5], &extra) != 6)
    return std::nullopt;
  for (std::size_t i = 0; i < 6; ++i) mac[i] = static_cast<uint8_t>(v[i]);
  return mac;
}

std::string mac_string(const std::array<uint8_t, 6>& m) {
  char buf[18];
  std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4],
                m[5]);
  return buf;
}

std::string to_string(Connection c) { return name_of(connections(), c); }
std::string to_string(RoamingPolicy r) { return name_of(roaming_policies(), r); }
std::string to_string(Roaming r) { return name_of(roaming_states(), r); }
std::string to_string(TrackMethod m) { return name_of(track_methods(), m); }

std::string to_string(Role r) { return r == Role::upstream ? "upstream" : "downstream"; }
std::string to_string(Engine e) { return e == Engine::kernel ? "kernel" : "dpdk"; }
std::string to_string(Hook h) { return h == Hook::xdp ? "xdp" : h == Hook::tc ? "tc" : "auto"; }

}  // namespace tp::conf
