#include "port_links.hpp"

#include "state_file.hpp"

namespace tp {

PortLinks::PortLinks(const std::vector<conf::PortConfig>& ports, std::string state_file)
    : ports_(ports), file_(std::move(state_file)), seen_(ports.size()), requested_(ports.size()) {
  const auto text = read_state_file(file_);
  if (!text) return;
  const Json j = Json::parse(*text, nullptr, false);
  if (!j.is_object()) {
    ignored_.push_back("not a JSON object");
    return;
  }
  for (const auto& [name, enabled] : j.items()) {
    std::optional<std::size_t> port;
    for (std::size_t p = 0; p < ports_.size(); ++p)
      if (ports_[p].name == name) port = p;
    if (!port || !ports_[*port].persist_enabled || !enabled.is_boolean())
      ignored_.push_back(
          name + (port ? ": not persisted (persist_enabled) or not true/false" : ": no such port"));
    else
      requested_[*port] = enabled.get<bool>();
  }
}

std::vector<PortLinks::Json> PortLinks::changes(const std::vector<Dataplane::LinkState>& now) {
  std::vector<Json> events;
  for (std::size_t p = 0; p < now.size() && p < seen_.size(); ++p) {
    if (seen_[p] && *seen_[p] != now[p]) {
      Json e{{"event", "interface_link"},
             {"iface", ports_[p].name},
             {"admin", now[p].admin ? "up" : "down"},
             {"carrier", now[p].carrier},
             {"changed", Json::array()}};
      if (seen_[p]->admin != now[p].admin) e["changed"].push_back("admin");
      if (seen_[p]->carrier != now[p].carrier) e["changed"].push_back("carrier");
      events.push_back(std::move(e));
    }
    seen_[p] = now[p];
  }
  return events;
}

std::string PortLinks::asked(uint8_t port, bool enabled) {
  requested_.at(port) = enabled;
  if (!ports_.at(port).persist_enabled) return "";
  Json j = Json::object();
  for (std::size_t p = 0; p < ports_.size(); ++p)
    if (ports_[p].persist_enabled && requested_[p]) j[ports_[p].name] = *requested_[p];
  try {
    write_state_file(file_, j.dump() + "\n");
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

std::vector<std::pair<uint8_t, bool>> PortLinks::saved() const {
  std::vector<std::pair<uint8_t, bool>> out;
  for (std::size_t p = 0; p < ports_.size(); ++p)
    if (ports_[p].persist_enabled && requested_[p])
      out.emplace_back(static_cast<uint8_t>(p), *requested_[p]);
  return out;
}

}  // namespace tp
