// The kernel's side of the sessions: nftables rules (table `inet tetherpath_sessions`) that put
// each new connection's session into its conntrack mark and every packet of it into its packet
// mark, where the session's routing rule finds it. Replaced in one transaction: no connection
// starts while half the selectors are there.
#pragma once

#include <string>
#include <vector>

#include "config.hpp"
#include "nftables.hpp"

namespace tp {

class SessionClassifier {
 public:
  // Exactly these sessions (none: the table goes). Empty, or why nothing changed.
  std::string apply(const std::vector<conf::SessionConfig>& sessions, uint32_t mask);
  std::string remove();

  static constexpr const char* kTable = "tetherpath_sessions";

 private:
  Nftables nft_;  // throws std::runtime_error
};

}  // namespace tp
