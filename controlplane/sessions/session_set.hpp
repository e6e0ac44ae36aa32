// The running sessions and what the kernel holds of them: each session's mark slot (stable across
// updates, so a running connection's mark keeps naming its session), the uplinks its table routes
// by now, and which tables are held while an update applies. The uplink monitor drives it with
// the uplinks' health; UplinkRouting writes the tables.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "session_policy.hpp"
#include "uplink_routing.hpp"

namespace tp {

class SessionSet {
 public:
  // The sessions now (in the configuration's order), with `room` slots in the mark mask. A
  // session keeps its slot by name; a new one takes the lowest slot no session held before (the
  // lowest free one when the mask has no other). Returns the slots whose policy changed: new,
  // changed or gone.
  std::set<std::size_t> assign(const std::vector<conf::SessionConfig>& sessions,
                               std::size_t room = SIZE_MAX);
  const std::vector<conf::SessionConfig>& sessions() const { return sessions_; }
  std::size_t slot(std::size_t j) const { return slots_[j]; }
  std::set<std::size_t> slots() const { return {slots_.begin(), slots_.end()}; }
  ClassifierPlan plan(const conf::RoutingConfig& routing,
                      const std::vector<std::string>& uplink_ifaces) const;

  // Writes the table of every session whose choice of uplinks changed (all after forget()),
  // except held ones. `managed[i]` is uplinks[i]'s route (ifindex 0: not there). Errors.
  std::vector<std::string> route(UplinkRouting& r, const std::vector<SessionUplink>& uplinks,
                                 const std::vector<ManagedUplink>& managed, SteadyTime now);
  void forget() { routes_.assign(sessions_.size(), std::nullopt); }
  // These slots' new connections are held until release(), whatever route() computes (`r`:
  // their tables now; null: none is programmed yet, and program_sessions() makes them held).
  std::vector<std::string> hold(UplinkRouting* r, const std::set<std::size_t>& slots);
  void release() { held_.clear(); }
  bool held(std::size_t slot) const { return held_.count(slot) != 0; }

  // The uplinks session j's new connections take now (empty: refused).
  const std::vector<std::string>& routed_by(std::size_t j) const;

 private:
  std::vector<conf::SessionConfig> sessions_;
  std::vector<std::size_t> slots_;                               // per session
  std::vector<std::optional<std::vector<std::string>>> routes_;  // per session, as written
  std::set<std::size_t> held_;
  std::size_t room_ = SIZE_MAX;
};

}  // namespace tp
