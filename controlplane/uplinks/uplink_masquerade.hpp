// Masquerade out of every managed uplink, as nftables rules in a table of tetherpath's own
// (`ip tetherpath_nat`), replaced in one nftables transaction so no connection ever sees a moment
// without NAT. libnftables speaks nft's language, which keeps the rules readable with `nft list`.
#pragma once

#include <string>
#include <vector>

#include "nftables.hpp"

namespace tp {

class UplinkMasquerade {
 public:
  // Masquerade out of exactly these interfaces. Empty, or what nftables said.
  std::string apply(const std::vector<std::string>& ifaces);
  // The table goes (connections NATed so far keep their mappings in conntrack).
  std::string remove();

  static constexpr const char* kTable = "tetherpath_nat";

 private:
  Nftables nft_;  // throws std::runtime_error
};

}  // namespace tp
