// The vehicle's states as its power manager (the API) and the kernel's silent-mode file tell
// them, and what follows for forwarding. Pure logic, on the control thread: the control plane
// applies what changed (the classifier, the offload decision, the ports) and publishes it.
//
// The rules, from Android Automotive's remote access: a remote task (garage mode) runs only while
// the vehicle is not in use, so a driver getting in ends it and it cannot start while someone
// uses the vehicle; the power manager asks for shutdown only when the vehicle is not in use.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "config.hpp"

namespace tp {

class VehicleModes {
 public:
  using Json = nlohmann::json;
  explicit VehicleModes(conf::VehicleConfig cfg) : cfg_(std::move(cfg)) {}
  // A reload: garage stays as asked unless the new configuration has no garage sessions.
  void configure(conf::VehicleConfig cfg);

  // Each answers why it is refused (empty: done). "busy: " starts a refusal of the moment.
  std::string set_in_use(bool in_use);
  std::string set_garage(bool active);
  void set_silent(bool silent) { silent_ = silent; }
  void set_suspended(bool suspended) { suspended_ = suspended; }
  // Why the power manager may not shut the box down now (empty: it may).
  std::string shutdown_refusal() const;

  // What forwarding follows: garage mode (asked, or silent mode configured as a remote task) and
  // the ports silent mode switches off.
  bool garage() const;
  bool ports_off() const { return silent_ && !cfg_.silent_ports.empty(); }
  bool suspended() const { return suspended_; }
  bool silent() const { return silent_; }
  const conf::VehicleConfig& config() const { return cfg_; }

  // The state for `status`, `vehicle` and the vehicle_state event.
  Json describe() const;

 private:
  conf::VehicleConfig cfg_;
  std::optional<bool> in_use_;  // unknown until the power manager says
  bool garage_asked_ = false;
  bool silent_ = false;
  bool suspended_ = false;
};

// The kernel's silent-mode file's content: "1" is silent, anything else (or none) is not.
bool silent_mode_text(const std::string& content);

}  // namespace tp
