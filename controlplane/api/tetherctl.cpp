// tetherctl: the management API from a shell. One verb per operation (docs/api.md), tables for
// people by default, the daemon's JSON with --json. Exit status: 0 ok, 1 the daemon refused (the
// error code is printed), 2 usage, 3 cannot reach the daemon.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "byte_count.hpp"

namespace {

using Json = nlohmann::json;

constexpr const char* kUsage =
    "usage: tetherctl [-s SOCKET] [--json] VERB [ARGS]\n"
    "  status | flows | ports | counters      what the daemon is doing\n"
    "  init | stop                            start / stop offload\n"
    "  set-upstream IFACE [--ipv4-addr A] [--ipv4-gateway G] [--ipv6-gateway G]...\n"
    "  uplinks                                the uplinks of multi-uplink mode\n"
    "  add-uplink NAME IFACE [UPLINK OPTIONS] | update-uplink NAME [--iface I] [UPLINK OPTIONS]\n"
    "      --kind cellular|wifi|ethernet|usb|bluetooth  --metered | --unmetered\n"
    "      --roaming home|national|international  --metric N  --weight N\n"
    "      --ipv4-addr A  --ipv4-gateway G  --ipv6-gateway G...  --ipv6-prefix P...\n"
    "      --track TARGET[,TARGET]... | --track off  --track-interval-ms N  --track-method "
    "ping|arp\n"
    "  remove-uplink NAME\n"
    "  sessions                               the sessions: policy, mark, uplinks now\n"
    "  set-session NAME [options]             create a session or change what the options name:\n"
    "                                         --mac M, --address PREFIX, --downstream PORT,\n"
    "                                         --uid USER, --gid GROUP, --cgroup PATH (the box's\n"
    "                                         own applications),\n"
    "                                         --uplink NAME|KIND (each repeatable; in order),\n"
    "                                         --connection internet|local, --priority N,\n"
    "                                         --roaming forbidden|national|international|always,\n"
    "                                         --existing-flows reset|keep,\n"
    "                                         --warning BYTES|none, --limit BYTES|none\n"
    "  remove-session NAME\n"
    "  clients                                each client's traffic: by uplink, session, roaming\n"
    "  session-stats                          each session's traffic: by uplink and roaming\n"
    "  emergency SESSION on|off               make an emergency session the active one, or end it\n"
    "  set-interface-enabled IFACE true|false bring a port's interface up or down\n"
    "  shutdown-prepare DEADLINE_MS           power-down coming: save the accounting, hand the\n"
    "                                         flows to the kernel, within the deadline\n"
    "  shutdown-cancel                        carry on after all: offload again\n"
    "  vehicle                                the vehicle's states: in use, garage, silent,\n"
    "                                         suspended\n"
    "  vehicle-in-use true|false              the vehicle is (not) in use; true ends garage mode\n"
    "  garage on|off                          a remote task runs: only the garage sessions are\n"
    "                                         forwarded (vehicle.garage.sessions)\n"
    "  suspend | resume                       the box sleeps (flows back to the kernel, nothing\n"
    "                                         of the daemon runs) / wakes (resynchronises, "
    "offloads)\n"
    "  add-downstream IFACE PREFIX | remove-downstream IFACE PREFIX\n"
    "  set-local-prefixes PREFIX...\n"
    "  stats IFACE                            bytes forwarded since the previous call\n"
    "  set-limit IFACE WARNING LIMIT          bytes (suffixes k M G T P E: powers of 1000)\n"
    "  events [--count N]                     stream events (until N arrived)\n"
    "  reload                                 re-read the configuration file\n"
    "  apply-signed-config BUNDLE.json        apply a signed remote configuration\n"
    "  restore-config                         back to the configuration before the last apply\n"
    "SOCKET defaults to $TETHERPATH_SOCKET, else /run/tetherpath/api.sock.\n";

[[noreturn]] void usage_error(const std::string& why) {
  std::fprintf(stderr, "tetherctl: %s\n%s", why.c_str(), kUsage);
  std::exit(2);
}

class Connection {
 public:
  explicit Connection(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (path.size() >= sizeof a.sun_path) fail(path, "path too long");
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
      fail(path, std::strerror(errno));
  }
  ~Connection() { ::close(fd_); }

  Json call(const Json& req) {
    const std::string line = req.dump() + "\n";
    for (std::size_t done = 0; done < line.size();) {
      const ssize_t n = ::send(fd_, line.data() + done, line.size() - done, MSG_NOSIGNAL);
      // A daemon that refuses a caller (permission_denied, busy) writes one line and closes at
      // once, possibly before the request is sent: that line is the answer, so read it.
      if (n <= 0) break;
      done += static_cast<std::size_t>(n);
    }
    return next();
  }

  Json next() {
    for (;;) {
      const auto nl = buf_.find('\n');
      if (nl != std::string::npos) {
        Json j = Json::parse(buf_.substr(0, nl), nullptr, false);
        buf_.erase(0, nl + 1);
        if (j.is_discarded()) fail("the daemon", "sent something that is not JSON");
        return j;
      }
      char tmp[65536];
      const ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
      if (n <= 0) fail("the daemon", "closed the connection");
      buf_.append(tmp, static_cast<std::size_t>(n));
    }
  }

 private:
  [[noreturn]] static void fail(const std::string& what, const std::string& why) {
    std::fprintf(stderr, "tetherctl: cannot reach %s: %s\n", what.c_str(), why.c_str());
    std::exit(3);
  }
  int fd_ = -1;
  std::string buf_;
};

// A non-negative decimal argument; anything else is a usage error naming WHAT.
unsigned long number(const std::string& what, const std::string& v) {
  char* end = nullptr;
  const unsigned long n = std::strtoul(v.c_str(), &end, 10);
  if (v.empty() || *end || v[0] == '-') usage_error(what + ": expected a number, got '" + v + "'");
  return n;
}

// "10M" -> 10000000. A negative count is passed on: the daemon judges it (illegal_argument).
Json bytes(const std::string& s) {
  std::string error;
  const auto c = tp::parse_byte_count(s, error);
  if (!c) usage_error(error);
  if (c->negative) return -static_cast<int64_t>(c->magnitude - 1) - 1;  // -2^63 included
  return c->magnitude;
}

std::string str(const Json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

// "wifi0: kernel engine, xdp program id 42 (native)": how a port is attached.
std::string attachment_line(const Json& p) {
  std::string s = str(p["name"]) + ": " + (p.contains("engine") ? str(p["engine"]) : "dpdk") +
                  " engine, " + str(p.value("hook", Json("")));
  if (p.value("program_id", 0) != 0)
    s += " program id " + str(p["program_id"]) + " (" + str(p["attach_mode"]) + ")";
  if (p.contains("xdp") && !p["xdp"].is_null())
    s += ", XDP program " + str(p["xdp"]["program"]) + " in " + str(p["xdp"]["mode"]) + " mode";
  if (!p.value("attach_note", std::string()).empty()) s += "; " + str(p["attach_note"]);
  return s;
}

// set-session's options: selectors and the uplinks repeat (in order), the rest are single.
void session_options(const std::vector<std::string>& rest, std::size_t first, Json& req) {
  static const std::map<std::string, std::pair<const char*, const char*>> lists = {
      {"--mac", {"match", "macs"}},
      {"--address", {"match", "addresses"}},
      {"--downstream", {"match", "downstreams"}},
      {"--uid", {"match", "uids"}},
      {"--gid", {"match", "gids"}},
      {"--cgroup", {"match", "cgroups"}},
      {"--uplink", {"", "uplinks"}}};
  for (std::size_t i = first; i < rest.size(); ++i) {
    const std::string& o = rest[i];
    if (i + 1 >= rest.size()) usage_error(o + " needs a value");
    const std::string& v = rest[++i];
    if (auto it = lists.find(o); it != lists.end()) {
      Json& at = *it->second.first ? req[it->second.first] : req;
      if (!at.contains(it->second.second)) at[it->second.second] = Json::array();
      at[it->second.second].push_back(v);
    } else if (o == "--priority") {
      char* end = nullptr;
      const long n = std::strtol(v.c_str(), &end, 10);
      if (v.empty() || *end) usage_error(o + ": expected a number, got '" + v + "'");
      req["priority"] = n;
    } else if (o == "--connection" || o == "--roaming") {
      req[o.substr(2)] = v;
    } else if (o == "--existing-flows") {
      req["existing_flows"] = v;
    } else if (o == "--warning" || o == "--limit") {
      req[o.substr(2) + "_bytes"] = v == "none" ? Json(nullptr) : bytes(v);
    } else {
      usage_error("unknown option " + o);
    }
  }
}

// The uplink options of add-uplink and update-uplink, from `first` on, into the request.
void uplink_options(const std::vector<std::string>& rest, std::size_t first, Json& req) {
  for (std::size_t i = first; i < rest.size(); ++i) {
    const std::string& o = rest[i];
    if (o == "--metered" || o == "--unmetered") {
      req["metered"] = o == "--metered";
      continue;
    }
    if (i + 1 >= rest.size()) usage_error(o + " needs a value");
    const std::string& v = rest[++i];
    if (o == "--metric" || o == "--weight") {
      req[o.substr(2)] = number(o, v);
    } else if (o == "--ipv6-gateway") {
      if (!req.contains("ipv6_gateways")) req["ipv6_gateways"] = Json::array();
      req["ipv6_gateways"].push_back(v);
    } else if (o == "--ipv6-prefix") {
      if (!req.contains("ipv6_prefixes")) req["ipv6_prefixes"] = Json::array();
      req["ipv6_prefixes"].push_back(v);
    } else if (o == "--track") {  // targets, comma-separated; "off" stops tracking
      req["track"] = Json::object();
      if (v == "off") continue;
      req["track"]["targets"] = Json::array();
      for (std::size_t at = 0; at <= v.size();) {
        const std::size_t comma = std::min(v.find(',', at), v.size());
        req["track"]["targets"].push_back(v.substr(at, comma - at));
        at = comma + 1;
      }
    } else if (o == "--track-method") {
      if (!req.contains("track") || req["track"].empty())
        usage_error("--track-method comes after --track TARGETS");
      req["track"]["method"] = v;
    } else if (o == "--track-interval-ms") {
      if (!req.contains("track") || req["track"].empty())
        usage_error("--track-interval-ms comes after --track TARGETS");
      req["track"]["interval_ms"] = number(o, v);
    } else if (o == "--iface" || o == "--kind" || o == "--roaming" || o == "--ipv4-addr" ||
               o == "--ipv4-gateway") {
      std::string key = o.substr(2);
      std::replace(key.begin(), key.end(), '-', '_');
      req[key] = v;
    } else {
      usage_error("unknown option " + o);
    }
  }
}

void table(const std::vector<std::string>& head,
           const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> w(head.size());
  for (std::size_t c = 0; c < head.size(); ++c) {
    w[c] = head[c].size();
    for (const auto& r : rows) w[c] = std::max(w[c], r[c].size());
  }
  auto print = [&](const std::vector<std::string>& r) {
    for (std::size_t c = 0; c < r.size(); ++c)
      std::cout << (c ? "  " : "") << (c ? std::right : std::left) << std::setw(int(w[c])) << r[c];
    std::cout << '\n';
  };
  print(head);
  for (const auto& r : rows) print(r);
}

void show(const std::string& verb, const Json& r) {
  if (verb == "flows") {
    std::vector<std::vector<std::string>> rows;
    for (const Json& f : r["flows"])
      rows.push_back({str(f["proto"]), str(f["src"]) + ":" + str(f["sport"]),
                      str(f["dst"]) + ":" + str(f["dport"]),
                      str(f["reply_dst"]) + ":" + str(f["reply_dport"]), str(f["orig_packets"]),
                      str(f["orig_bytes"]), str(f["reply_packets"]), str(f["reply_bytes"])});
    table({"proto", "source", "destination", "seen by the server as", "out pkts", "out bytes",
           "in pkts", "in bytes"},
          rows);
    std::cout << r["total"] << " flows offloaded\n";
  } else if (verb == "ports") {
    std::vector<std::vector<std::string>> rows;
    for (const Json& p : r["ports"])
      rows.push_back({str(p["name"]), str(p["role"]), str(p.value("admin", Json("-"))),
                      p.value("carrier", false) ? "yes" : "no", str(p["rx_packets"]),
                      str(p["fast_rx_packets"]), str(p["fast_tx_packets"]), str(p["punted"]),
                      str(p["from_kernel"]), str(p["fast_rx_bytes"]), str(p["fast_tx_bytes"])});
    table({"port", "role", "admin", "carrier", "rx", "fast rx", "fast tx", "to kernel",
           "from kernel", "fast rx bytes", "fast tx bytes"},
          rows);
    for (const Json& p : r["ports"]) std::cout << attachment_line(p) << '\n';
  } else if (verb == "uplinks") {
    std::vector<std::vector<std::string>> rows;
    for (const Json& u : r["uplinks"])
      rows.push_back({str(u["name"]), str(u["iface"]), str(u["kind"]),
                      u["metered"].get<bool>() ? "yes" : "no", str(u["roaming"]), str(u["metric"]),
                      str(u["weight"]), str(u.value("link", Json("-"))),
                      str(u.value("health", Json("-"))),
                      u.value("takes_new_connections", false) ? "yes" : "no",
                      u.contains("probe_loss_pct") ? str(u["probe_loss_pct"]) + "%" : "-",
                      u.value("ipv4_addr", std::string("-")),
                      u.contains("traffic") ? str(u["traffic"]["rx_bytes"]) : "-",
                      u.contains("traffic") ? str(u["traffic"]["tx_bytes"]) : "-"});
    table({"uplink", "iface", "kind", "metered", "roaming", "metric", "weight", "link", "health",
           "new conns", "probe loss", "ipv4", "rx bytes", "tx bytes"},
          rows);
  } else if (verb == "sessions") {
    std::vector<std::vector<std::string>> rows;
    const auto names = [](const Json& list) {
      std::string out;
      for (const Json& n : list) out += (out.empty() ? "" : ",") + n.get<std::string>();
      return out.empty() ? std::string("-") : out;
    };
    // "1200000 / 2000000 / 3000000 (reached)", "-" without a warning or a limit.
    const auto quota = [](const Json& x) {
      if (x.value("used_bytes", Json(nullptr)).is_null()) return std::string("-");
      const auto opt = [](const Json& v) { return v.is_null() ? std::string("-") : str(v); };
      return str(x["used_bytes"]) + " / " + opt(x["warning_bytes"]) + " / " +
             opt(x["limit_bytes"]) + (x.value("limit_reached", false) ? " (reached)" : "");
    };
    for (const Json& x : r.value("sessions", Json::array()))
      rows.push_back({str(x["name"]), names(x["uplinks"]), str(x["connection"]), str(x["roaming"]),
                      str(x["priority"]), str(x["existing_flows"]),
                      x["emergency"].get<bool>() ? "yes" : "no", str(x["mark"]),
                      names(x["routed_by"]), quota(x)});
    table({"session", "uplinks", "connection", "roaming", "priority", "existing", "emergency",
           "mark", "routed by now", "used / warning / limit"},
          rows);
    std::cout << "policy generation " << r.value("policy_generation", 0) << ", emergency "
              << (r.value("emergency", Json(nullptr)).is_null() ? std::string("none")
                                                                : str(r["emergency"]))
              << '\n';
  } else if (verb == "clients") {
    std::vector<std::vector<std::string>> rows;
    const auto opt = [](const Json& v) { return v.is_null() ? std::string("-") : str(v); };
    for (const Json& x : r["clients"])
      for (const Json& t : x["traffic"])
        rows.push_back({str(x["address"]), opt(x["mac"]), opt(x["downstream"]), opt(t["session"]),
                        str(t["uplink"]), str(t["roaming"]), str(t["up_packets"]),
                        str(t["up_bytes"]), str(t["down_packets"]), str(t["down_bytes"])});
    table({"address", "mac", "downstream", "session", "uplink", "roaming", "up pkts", "up bytes",
           "down pkts", "down bytes"},
          rows);
  } else if (verb == "session-stats") {
    std::vector<std::vector<std::string>> rows;
    for (const Json& x : r["sessions"])
      for (const Json& t : x["traffic"])
        rows.push_back({x["session"].is_null() ? std::string("(default)") : str(x["session"]),
                        str(t["uplink"]), str(t["roaming"]), str(t["up_packets"]),
                        str(t["up_bytes"]), str(t["down_packets"]), str(t["down_bytes"])});
    table({"session", "uplink", "roaming", "up pkts", "up bytes", "down pkts", "down bytes"}, rows);
  } else if (verb == "stats") {
    std::cout << r["iface"].get<std::string>() << ": rx " << r["rx_bytes"] << " bytes, tx "
              << r["tx_bytes"] << " bytes forwarded since the previous call\n";
  } else if (verb == "status") {
    std::cout << "offload     " << str(r["offload"]) << '\n';
    if (r.contains("engine")) std::cout << "engine      " << str(r["engine"]) << '\n';
    if (r.contains("port_attachments"))
      for (const Json& p : r["port_attachments"])
        std::cout << "port        " << attachment_line(p) << '\n';
    std::cout << "flows       " << r["flows"] << " offloaded, " << r["flows_waiting_for_neighbour"]
              << " waiting for a neighbour\n";
    const Json& u = r["upstream"];
    std::cout << "upstream    " << (u.is_null() ? "(none)" : str(u["iface"]));
    if (!u.is_null() && u.contains("ipv4_addr")) std::cout << ' ' << str(u["ipv4_addr"]);
    if (!u.is_null() && u.contains("ipv4_gateway")) std::cout << " via " << str(u["ipv4_gateway"]);
    if (!u.is_null())
      for (const Json& g : u["ipv6_gateways"]) std::cout << " via " << str(g);
    if (!u.is_null() && !u.value("offloaded", true))
      std::cout << " (no fast-path port: not offloaded)";
    std::cout << '\n';
    for (const Json& l : r.value("uplinks", Json::array()))
      std::cout << "uplink      " << str(l["name"]) << ": " << str(l["iface"]) << ", "
                << str(l["kind"]) << (l["metered"].get<bool>() ? ", metered" : "") << ", "
                << str(l["roaming"]) << ", metric " << l["metric"] << ", link "
                << str(l.value("link", Json("-"))) << ", " << str(l.value("health", Json("-")))
                << (l.value("takes_new_connections", false) ? ", takes new connections" : "")
                << '\n';
    for (const Json& d : r["downstreams"])
      std::cout << "downstream  " << str(d["iface"]) << ' ' << str(d["prefix"]) << '\n';
    for (const Json& p : r["local_prefixes"]) std::cout << "local       " << str(p) << '\n';
    for (const Json& l : r["limits"])
      std::cout << "limit       " << str(l["iface"]) << ": " << l["used"] << " of " << l["limit"]
                << " bytes (warning at " << l["warning"] << ")"
                << (l["limit_reached"].get<bool>()     ? ", limit reached"
                    : l["warning_reached"].get<bool>() ? ", warning reached"
                                                       : "")
                << '\n';
    std::cout << "config      " << str(r["config"]) << " (" << r["reloads"] << " reloads, "
              << r["reloads_refused"] << " refused)\n";
    if (const Json& s = r.value("signed_config", Json()); s.is_object())
      std::cout << "signed      last serial " << s["last_serial"] << ", restore to "
                << (s["restore_to"].is_null() ? "(nothing)" : s["restore_to"].dump()) << '\n';
  } else if (verb == "vehicle" || verb == "vehicle-in-use" || verb == "garage") {
    const Json& in_use = r["in_use"];
    std::cout << "in use      "
              << (in_use.is_null()     ? "unknown"
                  : in_use.get<bool>() ? "yes"
                                       : "no")
              << "\ngarage      " << (r["garage"].get<bool>() ? "on" : "off") << " (sessions "
              << r["garage_sessions"].dump() << ")\nsilent      "
              << (r["silent"].get<bool>() ? "on" : "off") << " (" << str(r["silent_file"])
              << "), ports off " << r["ports_off"].dump() << "\nsuspended   "
              << (r["suspended"].get<bool>() ? "yes" : "no") << '\n';
  } else if (verb == "suspend" || verb == "resume") {
    std::cout << (verb == "suspend" ? "suspended" : "resumed") << " in " << r["took_ms"]
              << " ms: " << r.value("flows_handed_back", r.value("flows_offloaded", Json(0)))
              << (verb == "suspend" ? " flows handed to the kernel\n" : " flows offloaded\n");
  } else if (verb == "counters") {
    for (const Json& w : r["workers"])
      std::cout << "worker lcore " << w["lcore"] << ": " << w["packets"] << " packets, "
                << w["clocks_per_packet"] << " clocks/packet, " << w["sleeps"] << " sleeps\n";
    std::cout << "exceptions:";
    for (const auto& [k, v] : r["exceptions"].items())
      if (v.get<uint64_t>()) std::cout << ' ' << k << '=' << v;
    std::cout << "\nconntrack:";
    for (const auto& [k, v] : r["conntrack"].items()) std::cout << ' ' << k << '=' << v;
    std::cout << "\nflows:";
    for (const auto& [k, v] : r["flow_manager"].items())
      if (!v.is_object()) std::cout << ' ' << k << '=' << v;
    std::cout << "\nnot offloaded:";
    for (const auto& [k, v] : r["flow_manager"]["not_offloaded"].items())
      std::cout << ' ' << k << '=' << v;
    std::cout << "\napi:";
    for (const auto& [k, v] : r["api"].items()) std::cout << ' ' << k << '=' << v;
    std::cout << '\n';
  } else {
    std::cout << "ok\n";
  }
}

}  // namespace

// An event for people: its name and what it is about; --json gives it whole. Events the CLI has no
// words for show their fields.
std::string event_line(const Json& e) {
  const std::string iface = str(e.value("iface", Json("")));
  std::string what;
  if (e.contains("uplink")) {
    what = str(e["uplink"]) + " (" + iface + ")";
  } else if (e.contains("admin")) {
    what = iface + " admin " + str(e["admin"]) + ", carrier " +
           (e.value("carrier", false) ? "on" : "off");
  } else if (e.contains("uplinks")) {
    what = e["uplinks"].dump();
  } else if (e.contains("upstream")) {
    what = str(e["upstream"]);
  } else {
    Json rest = e;
    rest.erase("event");
    what = rest.dump();
  }
  if (e.contains("detail")) what += " (" + str(e["detail"]) + ")";
  return str(e.value("event", Json("?"))) + ' ' + what;
}

int main(int argc, char** argv) {
  std::string socket_path;
  if (const char* env = std::getenv("TETHERPATH_SOCKET")) socket_path = env;
  if (socket_path.empty()) socket_path = "/run/tetherpath/api.sock";
  bool json = false;
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "-s" || a == "--socket") && i + 1 < argc)
      socket_path = argv[++i];
    else if (a == "--json")
      json = true;
    else if (a == "-h" || a == "--help") {
      std::cout << kUsage;
      return 0;
    } else
      args.push_back(a);
  }
  if (args.empty()) usage_error("no verb");
  const std::string verb = args[0];
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  auto need = [&](std::size_t n) {
    if (rest.size() != n) usage_error(verb + " takes " + std::to_string(n) + " argument(s)");
  };

  Json req;
  static const std::map<std::string, std::string> plain = {{"status", "status"},
                                                           {"flows", "flows"},
                                                           {"ports", "ports"},
                                                           {"counters", "counters"},
                                                           {"init", "init"},
                                                           {"stop", "stop"},
                                                           {"reload", "reload"},
                                                           {"clients", "clients"},
                                                           {"session-stats", "session_stats"},
                                                           {"vehicle", "vehicle"},
                                                           {"suspend", "suspend"},
                                                           {"resume", "resume"},
                                                           {"restore-config", "restore_config"}};
  if (auto it = plain.find(verb); it != plain.end()) {
    need(0);
    req = {{"op", it->second}};
  } else if (verb == "set-upstream") {
    if (rest.empty()) usage_error("set-upstream needs an interface");
    req = {{"op", "set_upstream"}, {"iface", rest[0]}, {"ipv6_gateways", Json::array()}};
    for (std::size_t i = 1; i < rest.size(); ++i) {
      if (i + 1 >= rest.size()) usage_error(rest[i] + " needs a value");
      if (rest[i] == "--ipv4-addr")
        req["ipv4_addr"] = rest[++i];
      else if (rest[i] == "--ipv4-gateway")
        req["ipv4_gateway"] = rest[++i];
      else if (rest[i] == "--ipv6-gateway")
        req["ipv6_gateways"].push_back(rest[++i]);
      else
        usage_error("unknown option " + rest[i]);
    }
  } else if (verb == "uplinks" || verb == "sessions") {
    need(0);
    req = {{"op", "status"}};
  } else if (verb == "set-session") {
    if (rest.empty()) usage_error("set-session needs a name");
    req = {{"op", "set_session"}, {"name", rest[0]}};
    session_options(rest, 1, req);
  } else if (verb == "remove-session") {
    need(1);
    req = {{"op", "remove_session"}, {"name", rest[0]}};
  } else if (verb == "emergency") {
    need(2);
    if (rest[1] != "on" && rest[1] != "off") usage_error("emergency takes on or off");
    req = {{"op", "set_emergency"}, {"session", rest[0]}, {"active", rest[1] == "on"}};
  } else if (verb == "shutdown-prepare") {
    need(1);
    const unsigned long ms = number("shutdown-prepare's deadline (ms)", rest[0]);
    if (ms == 0 || ms > 600000)
      usage_error("shutdown-prepare takes a deadline in milliseconds (1 to 600000)");
    req = {{"op", "shutdown_prepare"}, {"deadline_ms", ms}};
  } else if (verb == "vehicle-in-use") {
    need(1);
    if (rest[0] != "true" && rest[0] != "false") usage_error("vehicle-in-use takes true or false");
    req = {{"op", "set_vehicle_in_use"}, {"in_use", rest[0] == "true"}};
  } else if (verb == "garage") {
    need(1);
    if (rest[0] != "on" && rest[0] != "off") usage_error("garage takes on or off");
    req = {{"op", "set_garage"}, {"active", rest[0] == "on"}};
  } else if (verb == "apply-signed-config") {
    need(1);
    // Sent as read: the daemon judges the bundle (a truncated file is its refusal, with an event).
    std::ifstream in(rest[0], std::ios::binary);
    if (!in) usage_error("cannot read " + rest[0]);
    std::stringstream text;
    text << in.rdbuf();
    req = {{"op", "apply_signed_config"}, {"bundle", text.str()}};
  } else if (verb == "shutdown-cancel") {
    need(0);
    req = {{"op", "shutdown_cancel"}};
  } else if (verb == "set-interface-enabled") {
    need(2);
    if (rest[1] != "true" && rest[1] != "false")
      usage_error("set-interface-enabled takes true or false");
    req = {{"op", "set_interface_enabled"}, {"iface", rest[0]}, {"enabled", rest[1] == "true"}};
  } else if (verb == "add-uplink") {
    if (rest.size() < 2) usage_error("add-uplink needs a name and an interface");
    req = {{"op", "add_uplink"}, {"name", rest[0]}, {"iface", rest[1]}};
    uplink_options(rest, 2, req);
  } else if (verb == "update-uplink") {
    if (rest.empty()) usage_error("update-uplink needs a name");
    req = {{"op", "update_uplink"}, {"name", rest[0]}};
    uplink_options(rest, 1, req);
  } else if (verb == "remove-uplink") {
    need(1);
    req = {{"op", "remove_uplink"}, {"name", rest[0]}};
  } else if (verb == "add-downstream" || verb == "remove-downstream") {
    need(2);
    req = {{"op", verb == "add-downstream" ? "add_downstream" : "remove_downstream"},
           {"iface", rest[0]},
           {"prefix", rest[1]}};
  } else if (verb == "set-local-prefixes") {
    req = {{"op", "set_local_prefixes"}, {"prefixes", rest}};
  } else if (verb == "stats") {
    need(1);
    req = {{"op", "get_forwarded_stats"}, {"iface", rest[0]}};
  } else if (verb == "set-limit") {
    need(3);
    req = {{"op", "set_data_warning_and_limit"},
           {"iface", rest[0]},
           {"warning", bytes(rest[1])},
           {"limit", bytes(rest[2])}};
  } else if (verb == "events") {
    long count = -1;
    if (rest.size() == 2 && rest[0] == "--count")
      count = std::atol(rest[1].c_str());
    else if (!rest.empty())
      usage_error("events takes only --count N");
    Connection c(socket_path);
    const Json r = c.call({{"op", "subscribe_events"}});
    if (!r.value("ok", false)) {
      std::cerr << "tetherctl: error: " << str(r["error"]) << ": " << str(r["message"]) << '\n';
      return 1;
    }
    for (long n = 0; count < 0 || n < count; ++n) {
      const Json e = c.next();
      if (json)
        std::cout << e.dump() << std::endl;
      else
        std::cout << event_line(e) << std::endl;
    }
    return 0;
  } else {
    usage_error("unknown verb '" + verb + "'");
  }

  Connection c(socket_path);
  const Json r = c.call(req);
  if (!r.value("ok", false)) {
    if (json) std::cout << r.dump(2) << '\n';
    std::cerr << "tetherctl: error: " << str(r.value("error", Json("?"))) << ": "
              << str(r.value("message", Json(""))) << '\n';
    return 1;
  }
  if (json)
    std::cout << r.dump(2) << '\n';
  else
    show(verb, r);
  return 0;
}
