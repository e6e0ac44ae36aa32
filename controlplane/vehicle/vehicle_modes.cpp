#include "vehicle_modes.hpp"

namespace tp {

void VehicleModes::configure(conf::VehicleConfig cfg) {
  cfg_ = std::move(cfg);
  if (cfg_.garage_sessions.empty()) garage_asked_ = false;
}

std::string VehicleModes::set_in_use(bool in_use) {
  in_use_ = in_use;
  if (in_use) garage_asked_ = false;  // someone got in: the remote task ends
  return "";
}

std::string VehicleModes::set_garage(bool active) {
  if (active && cfg_.garage_sessions.empty())
    return "no garage sessions are configured (vehicle.garage.sessions)";
  if (active && in_use_.value_or(false))
    return "busy: the vehicle is in use (a remote task runs only while it is not)";
  garage_asked_ = active;
  return "";
}

std::string VehicleModes::shutdown_refusal() const {
  return in_use_.value_or(false) ? "busy: the vehicle is in use" : "";
}

bool VehicleModes::garage() const {
  return garage_asked_ || (silent_ && cfg_.silent_garage && !in_use_.value_or(false));
}

VehicleModes::Json VehicleModes::describe() const {
  return Json{{"in_use", in_use_ ? Json(*in_use_) : Json(nullptr)},
              {"garage", garage()},
              {"garage_asked", garage_asked_},
              {"garage_sessions", cfg_.garage_sessions},
              {"silent", silent_},
              {"silent_file", cfg_.silent_file},
              {"ports_off", ports_off() ? Json(cfg_.silent_ports) : Json::array()},
              {"suspended", suspended_}};
}

bool silent_mode_text(const std::string& content) {
  const auto first = content.find_first_not_of(" \t\r\n");
  return first != std::string::npos && content[first] == '1' &&
         content.find_first_not_of(" \t\r\n", first + 1) == std::string::npos;
}

}  // namespace tp
