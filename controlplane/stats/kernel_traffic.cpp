#include "kernel_traffic.hpp"

#include <nlohmann/json.hpp>

namespace tp {

namespace {

// One table per family, not one `inet` table: a `ct` expression in an inet table makes the
// kernel track both families, and a box whose firewall is IPv4-only (offload.ipv6: neighbours)
// must not start tracking IPv6 because it is counted.
constexpr const char* kTables[] = {"ip tetherpath_traffic", "ip6 tetherpath_traffic"};

struct SetShape {
  const char* name;
  bool up;
  bool v6;
  const char* addr;   // the client's address: the source going up, the destination coming down
  const char* iface;  // the other side: where it goes up, where it comes from down
};
constexpr SetShape kSets[] = {{"up4", true, false, "ip saddr", "oifname"},
                              {"down4", false, false, "ip daddr", "iifname"},
                              {"up6", true, true, "ip6 saddr", "oifname"},
                              {"down6", false, true, "ip6 daddr", "iifname"}};

}  // namespace

std::string KernelTraffic::table_text(const std::vector<std::string>& downstreams, bool v6,
                                      bool tracked) {
  std::string names;
  for (const auto& d : downstreams) names += (names.empty() ? "\"" : ", \"") + d + "\"";
  // Untracked, a packet has no connection mark; its own (meta) mark is what classifies it.
  const std::string mark = tracked ? "ct mark" : "meta mark";
  std::string t = std::string("table ") + kTables[v6] + " {\n";
  // An element lives two hours past its last packet: the daemon reads every counter at least
  // every limits.persist_interval_s (at most an hour), so what it counted is read before it goes,
  // and one that comes back is new to the ledger (it forgets what a reading no longer shows).
  // The size bounds the memory; past it a new client is not counted by the kernel path until
  // some expire.
  for (const auto& s : kSets)
    if (s.v6 == v6)
      t += std::string("  set ") + s.name + " { typeof " + s.addr + " . " + s.iface + " . " + mark +
           "; size 65536; flags dynamic,timeout; timeout 2h; counter; }\n";
  t += "  chain count {\n    type filter hook forward priority 100; policy accept;\n";
  for (const auto& s : kSets) {
    if (s.v6 != v6) continue;
    const bool up = s.up;
    t += std::string("    ") + (up ? "iifname" : "oifname") + " { " + names + " } " +
         (up ? "oifname" : "iifname") + " != { " + names + " } update @" + s.name + " { " + s.addr +
         " . " + s.iface + " . " + mark + " }\n";
  }
  t += "  }\n}\n";
  return t;
}

std::string KernelTraffic::install(const std::vector<std::string>& downstreams, bool ipv6_tracked) {
  if (present_ && downstreams == installed_ && ipv6_tracked == tracked6_) return "";
  for (const auto& d : downstreams)
    if (!Nftables::quotable(d)) return "traffic counters: '" + d + "' cannot be an interface name";
  if (downstreams.empty()) {
    remove();
    return "";
  }
  // An older daemon's single inet table, if a crash left it, goes too: its `ct` expressions
  // would keep the kernel tracking IPv6.
  std::string text = Nftables::emptied("inet tetherpath_traffic");
  for (bool v6 : {false, true})
    text += Nftables::emptied(kTables[v6]) + table_text(downstreams, v6, !v6 || ipv6_tracked);
  if (std::string e = nft_.run(text); !e.empty()) return e;
  installed_ = downstreams;
  tracked6_ = ipv6_tracked;
  present_ = true;
  return "";
}

void KernelTraffic::remove() {
  if (!present_) return;
  for (const char* t : kTables) nft_.replace_table(t, "");
  present_ = false;
  installed_.clear();
}

std::vector<KernelTrafficCount> KernelTraffic::read(std::string& error) {
  error.clear();
  if (!present_) return {};
  std::vector<KernelTrafficCount> counts;
  for (const char* t : kTables) {
    std::string out;
    if (error = nft_.list_json(std::string("list table ") + t, out); !error.empty()) return {};
    auto more = parse(out);
    counts.insert(counts.end(), std::make_move_iterator(more.begin()),
                  std::make_move_iterator(more.end()));
  }
  return counts;
}

std::vector<KernelTrafficCount> KernelTraffic::parse(const std::string& text) {
  std::vector<KernelTrafficCount> counts;
  const auto doc = nlohmann::json::parse(text, nullptr, false);
  if (!doc.is_object() || !doc.contains("nftables") || !doc["nftables"].is_array()) return counts;
  for (const auto& item : doc["nftables"]) {
    if (!item.is_object() || !item.contains("set")) continue;
    const auto& set = item["set"];
    if (!set.is_object() || !set.contains("name") || !set["name"].is_string()) continue;
    const std::string name = set["name"].get<std::string>();
    const SetShape* shape = nullptr;
    for (const auto& s : kSets)
      if (name == s.name) shape = &s;
    if (!shape || !set.contains("elem") || !set["elem"].is_array()) continue;
    for (const auto& e : set["elem"]) {
      const auto& elem = e.contains("elem") ? e["elem"] : e;
      if (!elem.is_object() || !elem.contains("val") || !elem.contains("counter")) continue;
      const auto& val = elem["val"];
      const auto& counter = elem["counter"];
      if (!val.is_object() || !val.contains("concat") || !val["concat"].is_array() ||
          val["concat"].size() != 3 || !counter.is_object())
        continue;
      const auto& key = val["concat"];
      if (!key[0].is_string() || !key[1].is_string() || !key[2].is_number_unsigned()) continue;
      const auto addr = IpAddr::parse(key[0].get<std::string>());
      if (!addr) continue;
      KernelTrafficCount c;
      c.up = shape->up;
      c.client = *addr;
      c.iface = key[1].get<std::string>();
      c.mark = key[2].get<uint32_t>();
      // Only numbers are counts: what nft printed otherwise is skipped, never thrown on.
      if (!counter.contains("packets") || !counter["packets"].is_number_unsigned() ||
          !counter.contains("bytes") || !counter["bytes"].is_number_unsigned())
        continue;
      c.packets = counter["packets"].get<uint64_t>();
      c.bytes = counter["bytes"].get<uint64_t>();
      c.element =
          name + ' ' + key[0].get<std::string>() + ' ' + c.iface + ' ' + std::to_string(c.mark);
      counts.push_back(std::move(c));
    }
  }
  return counts;
}

}  // namespace tp
