// The kernel's side of the sessions: nftables rules (table `inet tetherpath_sessions`) that put
// each new connection's session (and, with routing.mark_mask, its uplink) into its conntrack mark
// and every packet of it into its packet mark, where the session's (and the uplink's) routing
// rule finds it. Replaced in one transaction: no connection starts while half the selectors are
// there.
#pragma once

#include <string>
#include <vector>

#include "nftables.hpp"
#include "session_policy.hpp"

namespace tp {

class SessionClassifier {
 public:
  // Exactly this plan (nothing to mark: the table goes). Empty, or why nothing changed.
  std::string apply(const ClassifierPlan& plan);
  std::string remove();

  static constexpr const char* kTable = "tetherpath_sessions";

 private:
  Nftables nft_;  // throws std::runtime_error
};

}  // namespace tp
