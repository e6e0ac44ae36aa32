// What the configuration loader says of a YAML text it refuses ("(loaded)" if it does not).
#pragma once

#include <string>

#include "config.hpp"

namespace tp {

inline std::string config_refusal(const std::string& yaml, const std::string& name = "bad.yaml") {
  try {
    conf::load_string(yaml, name);
  } catch (const conf::ConfigError& e) {
    return e.what();
  }
  return "(loaded)";
}

}  // namespace tp
