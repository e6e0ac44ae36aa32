#include "kernel_traffic.hpp"

#include <nlohmann/json.hpp>

namespace tp {

namespace {

constexpr const char* kTable = "inet tetherpath_traffic";

struct SetShape {
  const char* name;
  bool up;
  const char* addr;   // the client's address: the source going up, the destination coming down
  const char* iface;  // the other side: where it goes up, where it comes from down
};
constexpr SetShape kSets[] = {{"up4", true, "ip saddr", "oifname"},
                              {"down4", false, "ip daddr", "iifname"},
                              {"up6", true, "ip6 saddr", "oifname"},
                              {"down6", false, "ip6 daddr", "iifname"}};

}  // namespace

std::string KernelTraffic::table_text(const std::vector<std::string>& downstreams) {
  std::string names;
  for (const auto& d : downstreams) names += (names.empty() ? "\"" : ", \"") + d + "\"";
  std::string t = std::string("table ") + kTable + " {\n";
  // No timeout: an element that expired and came back would restart its counter unseen. The
  // size bounds the memory; past it a new client is not counted by the kernel path.
  for (const auto& s : kSets)
    t += std::string("  set ") + s.name + " { typeof " + s.addr + " . " + s.iface +
         " . ct mark; size 65536; flags dynamic; counter; }\n";
  t += "  chain count {\n    type filter hook forward priority 100; policy accept;\n";
  for (const auto& s : kSets) {
    const bool up = s.up;
    t += std::string("    ") + (up ? "iifname" : "oifname") + " { " + names + " } " +
         (up ? "oifname" : "iifname") + " != { " + names + " } update @" + s.name + " { " + s.addr +
         " . " + s.iface + " . ct mark }\n";
  }
  t += "  }\n}\n";
  return t;
}

std::string KernelTraffic::install(const std::vector<std::string>& downstreams) {
  if (present_ && downstreams == installed_) return "";
  for (const auto& d : downstreams)
    if (!Nftables::quotable(d)) return "traffic counters: '" + d + "' cannot be an interface name";
  if (downstreams.empty()) {
    remove();
    return "";
  }
  if (std::string e = nft_.replace_table(kTable, table_text(downstreams)); !e.empty()) return e;
  installed_ = downstreams;
  present_ = true;
  return "";
}

void KernelTraffic::remove() {
  if (!present_) return;
  nft_.run(std::string("delete table ") + kTable);
  present_ = false;
  installed_.clear();
}

std::vector<KernelTrafficCount> KernelTraffic::read(std::string& error) {
  error.clear();
  if (!present_) return {};
  std::string out;
  if (error = nft_.list_json(std::string("list table ") + kTable, out); !error.empty()) return {};
  return parse(out);
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
