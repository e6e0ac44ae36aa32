#include "session_limits.hpp"

#include <algorithm>

namespace tp {

namespace {

uint64_t total_of(const std::map<std::string, uint64_t>& totals, const std::string& s) {
  const auto it = totals.find(s);
  return it == totals.end() ? 0 : it->second;
}

}  // namespace

std::vector<SessionQuotaEvent> SessionLimits::configure(
    const std::vector<conf::SessionConfig>& sessions,
    const std::map<std::string, uint64_t>& totals) {
  std::map<std::string, Quota> next;
  for (const auto& s : sessions) {
    if (!s.warning_bytes && !s.limit_bytes) continue;
    const auto old = quotas_.find(s.name);
    if (old != quotas_.end() && old->second.warning == s.warning_bytes &&
        old->second.limit == s.limit_bytes) {
      next[s.name] = old->second;
      continue;
    }
    Quota q;
    q.warning = s.warning_bytes;
    q.limit = s.limit_bytes;
    q.base = total_of(totals, s.name);
    next[s.name] = q;
  }
  quotas_ = std::move(next);
  return charge(totals);
}

bool SessionLimits::recounts(const std::vector<conf::SessionConfig>& sessions) const {
  return std::any_of(sessions.begin(), sessions.end(), [&](const conf::SessionConfig& s) {
    if (!s.warning_bytes && !s.limit_bytes) return false;
    const auto old = quotas_.find(s.name);
    return old == quotas_.end() || old->second.warning != s.warning_bytes ||
           old->second.limit != s.limit_bytes;
  });
}

std::vector<SessionQuotaEvent> SessionLimits::charge(
    const std::map<std::string, uint64_t>& totals) {
  std::vector<SessionQuotaEvent> events;
  for (auto& [name, q] : quotas_) {
    const uint64_t total = total_of(totals, name);
    q.used = q.carried + (total >= q.base ? total - q.base : 0);
    if (q.warning && !q.warned && q.used >= *q.warning) {
      q.warned = true;
      events.push_back({"warning_reached", name, q.used, *q.warning});
    }
    if (q.limit && !q.reached && q.used >= *q.limit) {
      q.reached = true;
      events.push_back({"limit_reached", name, q.used, *q.limit});
    }
  }
  return events;
}

std::set<std::string> SessionLimits::reached() const {
  std::set<std::string> out;
  for (const auto& [name, q] : quotas_)
    if (q.reached) out.insert(name);
  return out;
}

bool SessionLimits::counting() const {
  for (const auto& [name, q] : quotas_)
    if ((q.warning && !q.warned) || (q.limit && !q.reached)) return true;
  return false;
}

std::optional<SessionLimits::View> SessionLimits::view(const std::string& session) const {
  const auto it = quotas_.find(session);
  if (it == quotas_.end()) return std::nullopt;
  const Quota& q = it->second;
  return View{q.warning, q.limit, q.used, q.warned, q.reached};
}

nlohmann::json SessionLimits::usage() const {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [name, q] : quotas_)
    out[name] = {{"warning", q.warning ? nlohmann::json(*q.warning) : nlohmann::json(nullptr)},
                 {"limit", q.limit ? nlohmann::json(*q.limit) : nlohmann::json(nullptr)},
                 {"used", q.used},
                 {"warning_reached", q.warned},
                 {"limit_reached", q.reached}};
  return out;
}

std::vector<std::string> SessionLimits::restore(const nlohmann::json& saved) {
  std::vector<std::string> ignored;
  if (!saved.is_object()) return {"not a JSON object: nothing restored"};
  const auto threshold = [](const nlohmann::json& v, const char* key,
                            std::optional<uint64_t>& out) {
    if (!v.contains(key)) return false;
    if (v[key].is_null()) {
      out.reset();
      return true;
    }
    if (!v[key].is_number_unsigned()) return false;
    out = v[key].get<uint64_t>();
    return true;
  };
  for (const auto& item : saved.items()) {
    // Not a structured binding: clang 14 cannot capture one in the lambda below.
    const std::string name = item.key();
    const nlohmann::json& v = item.value();
    const auto it = quotas_.find(name);
    if (it == quotas_.end()) {
      ignored.push_back(name + ": no such session with a warning or limit (any more)");
      continue;
    }
    std::optional<uint64_t> warning, limit;
    if (!v.is_object() || !threshold(v, "warning", warning) || !threshold(v, "limit", limit) ||
        !v.contains("used") || !v["used"].is_number_unsigned()) {
      ignored.push_back(name + ": expected warning, limit (bytes or null) and used (bytes)");
      continue;
    }
    Quota& q = it->second;
    if (warning != q.warning || limit != q.limit) {
      ignored.push_back(name + ": its warning or limit changed since: counting starts again");
      continue;
    }
    const auto flag = [&](const char* key) {
      return v.contains(key) && v[key].is_boolean() && v[key].get<bool>();
    };
    q.carried = v["used"].get<uint64_t>();
    q.warned = flag("warning_reached");
    q.reached = flag("limit_reached");
  }
  return ignored;
}

}  // namespace tp
