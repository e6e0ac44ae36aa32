#include "session_set.hpp"

#include <algorithm>

namespace tp {

std::set<std::size_t> SessionSet::assign(const std::vector<conf::SessionConfig>& sessions,
                                         std::size_t room) {
  room_ = room;
  std::set<std::size_t> changed;
  std::vector<std::size_t> slots(sessions.size(), SIZE_MAX);
  std::set<std::size_t> used;
  for (std::size_t j = 0; j < sessions.size(); ++j)
    for (std::size_t k = 0; k < sessions_.size(); ++k)
      if (sessions_[k].name == sessions[j].name) {
        slots[j] = slots_[k];
        used.insert(slots_[k]);
        if (!(sessions_[k] == sessions[j])) changed.insert(slots_[k]);
      }
  // A new session takes a slot no session had before this update, if the mask has one: a gone
  // session's running connections must not be counted and routed as the newcomer's.
  const std::set<std::size_t> before(slots_.begin(), slots_.end());
  for (std::size_t j = 0; j < sessions.size(); ++j) {
    if (slots[j] != SIZE_MAX) continue;
    std::size_t free = 0;
    while (used.count(free) || (before.count(free) && free < room_)) ++free;
    if (free >= room_) {  // no fresh one: the lowest free
      free = 0;
      while (used.count(free)) ++free;
    }
    slots[j] = free;
    used.insert(free);
    changed.insert(free);
  }
  for (std::size_t s : slots_)
    if (!used.count(s)) changed.insert(s);  // gone
  // Routes as written stay with their sessions; a changed policy is written again.
  std::vector<std::optional<std::vector<std::string>>> routes(sessions.size());
  for (std::size_t j = 0; j < sessions.size(); ++j)
    for (std::size_t k = 0; k < sessions_.size(); ++k)
      if (slots_[k] == slots[j] && !changed.count(slots[j])) routes[j] = routes_[k];
  sessions_ = sessions;
  slots_ = std::move(slots);
  routes_ = std::move(routes);
  return changed;
}

ClassifierPlan SessionSet::plan(const conf::RoutingConfig& routing,
                                const std::vector<std::string>& uplink_ifaces) const {
  ClassifierPlan p;
  p.sessions = sessions_;
  p.slots = slots_;
  p.session_mask = routing.session_mark_mask;
  p.uplink_mask = routing.mark_mask;
  if (routing.mark_mask) p.uplink_ifaces = uplink_ifaces;
  return p;
}

std::vector<std::string> SessionSet::route(UplinkRouting& r,
                                           const std::vector<SessionUplink>& uplinks,
                                           const std::vector<ManagedUplink>& managed,
                                           SteadyTime now) {
  std::vector<std::string> errors;
  for (std::size_t j = 0; j < sessions_.size(); ++j) {
    if (held_.count(slots_[j])) continue;
    std::vector<std::string> names;
    std::vector<ManagedUplink> via;
    for (std::size_t i : session_route(sessions_[j], uplinks, now)) {
      names.push_back(uplinks[i].name);
      if (managed[i].ifindex) via.push_back(managed[i]);
    }
    if (routes_[j] == names) continue;
    routes_[j] = names;
    for (const auto& e :
         r.set_session(slots_[j], via, sessions_[j].connection == conf::Connection::local))
      errors.push_back("session " + sessions_[j].name + ": " + e);
  }
  return errors;
}

std::vector<std::string> SessionSet::hold(UplinkRouting* r, const std::set<std::size_t>& slots) {
  std::vector<std::string> errors;
  for (std::size_t s : slots) {
    held_.insert(s);
    if (!r) continue;
    const auto e = r->hold_session(s);  // a slot not programmed yet is held once it is
    errors.insert(errors.end(), e.begin(), e.end());
  }
  for (std::size_t j = 0; j < sessions_.size(); ++j)
    if (held_.count(slots_[j])) routes_[j].reset();
  return errors;
}

const std::vector<std::string>& SessionSet::routed_by(std::size_t j) const {
  static const std::vector<std::string> none;
  return j < routes_.size() && routes_[j] ? *routes_[j] : none;
}

}  // namespace tp
