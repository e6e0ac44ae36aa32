#include "uplink_masquerade.hpp"

namespace tp {

std::string UplinkMasquerade::apply(const std::vector<std::string>& ifaces) {
  std::string set;
  for (const std::string& i : ifaces) {
    if (!Nftables::quotable(i))
      return "nftables: interface name '" + i + "' cannot be written in a rule";
    set += (set.empty() ? "\"" : ", \"") + i + "\"";
  }
  std::string table = std::string("table ip ") + kTable + " {\n  chain postrouting {\n" +
                      "    type nat hook postrouting priority srcnat; policy accept;\n";
  if (!set.empty()) table += "    oifname { " + set + " } masquerade\n";
  table += "  }\n}\n";
  return nft_.replace_table(std::string("ip ") + kTable, table);
}

std::string UplinkMasquerade::remove() {
  return nft_.replace_table(std::string("ip ") + kTable, "");
}

}  // namespace tp
