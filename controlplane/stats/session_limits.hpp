// The sessions' own data warnings and limits: a session's usage is its clients' IP bytes both
// ways over every uplink (the traffic ledger's total for it) since its warning and limit were
// set. Crossing the warning is an event; crossing the limit is an event and stops the session's
// forwarding (the daemon's part: the classifier drops its packets, the offload policy refuses
// its flows). Pure logic; the daemon feeds it the ledger's totals.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "config.hpp"

namespace tp {

struct SessionQuotaEvent {
  std::string event;  // warning_reached, limit_reached
  std::string session;
  uint64_t used = 0, threshold = 0;
};

class SessionLimits {
 public:
  // The sessions now, with each one's ledger total so far: a session whose warning and limit did
  // not change keeps its usage; a new or changed one counts from zero, from now. Returns what a
  // threshold of 0 reached at once.
  std::vector<SessionQuotaEvent> configure(const std::vector<conf::SessionConfig>& sessions,
                                           const std::map<std::string, uint64_t>& totals);
  // Whether configure() would start counting anew for some session (its warning or limit is new
  // or changed): the totals it is given must then be current.
  bool recounts(const std::vector<conf::SessionConfig>& sessions) const;
  // The ledger's totals now: what crossed a threshold since the previous call (once each).
  std::vector<SessionQuotaEvent> charge(const std::map<std::string, uint64_t>& totals);
  // Sessions whose limit is reached: their forwarding stops until the limit changes.
  std::set<std::string> reached() const;
  // Whether some threshold is still ahead (the daemon reads the counters often then).
  bool counting() const;

  struct View {
    std::optional<uint64_t> warning, limit;
    uint64_t used = 0;
    bool warned = false, reached = false;
  };
  std::optional<View> view(const std::string& session) const;

  // What survives a restart ({session: {warning, limit, used, warning_reached, limit_reached}}),
  // and taking it back at start: a saved session whose thresholds are still the configured ones
  // carries its usage on. Returns what was ignored, and why.
  nlohmann::json usage() const;
  std::vector<std::string> restore(const nlohmann::json& saved);

 private:
  struct Quota {
    std::optional<uint64_t> warning, limit;
    uint64_t carried = 0;  // used before `base` (a previous run's)
    uint64_t base = 0;     // the ledger's total when counting began
    uint64_t used = 0;
    bool warned = false, reached = false;
  };
  std::map<std::string, Quota> quotas_;
};

}  // namespace tp
