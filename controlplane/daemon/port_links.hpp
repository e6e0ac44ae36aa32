// Each port's link as applications see it, as netd's interfaceLinkStateChanged reports it: the
// admin state and carrier of the port's kernel interface, whoever changed them (an application
// through set_interface_enabled, `ip link`, a cable), as one event per change. And the admin state
// an application asked for, saved across restarts for the ports configured so (persist_enabled):
// a port switched off stays off at the next ignition. Control thread only.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config.hpp"
#include "dataplane.hpp"

namespace tp {

class PortLinks {
 public:
  using Json = nlohmann::json;
  PortLinks(const std::vector<conf::PortConfig>& ports, std::string state_file);

  // The links as the last poll saw them: an `interface_link` event for each port whose admin
  // state or carrier differs from the previous call's. The first call only records.
  std::vector<Json> changes(const std::vector<Dataplane::LinkState>& now);

  // set_interface_enabled succeeded: remembered, and saved if the port persists its state. An
  // error message if the save failed (the interface is switched all the same).
  std::string asked(uint8_t port, bool enabled);
  // The saved states of the persisting ports, for the start: (port, enabled).
  std::vector<std::pair<uint8_t, bool>> saved() const;
  std::optional<bool> requested(uint8_t port) const { return requested_.at(port); }
  // What the state file held that was not used, for the log.
  const std::vector<std::string>& ignored() const { return ignored_; }

 private:
  std::vector<conf::PortConfig> ports_;
  std::string file_;
  std::vector<std::optional<Dataplane::LinkState>> seen_;
  std::vector<std::optional<bool>> requested_;
  std::vector<std::string> ignored_;
};

}  // namespace tp
