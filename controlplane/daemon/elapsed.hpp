// How long something the control thread did took, for replies and logs.
#pragma once

#include <chrono>
#include <cmath>

#include <nlohmann/json.hpp>

namespace tp {

inline double ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

// How long each step of a long operation took (policy_applied's and resume's steps_ms): where
// the time of a slow one went, on the box that had it.
class StepTimes {
 public:
  void lap(const char* step) {
    const auto now = std::chrono::steady_clock::now();
    steps_[step] = rounded(now - last_);
    last_ = now;
  }
  const nlohmann::json& steps() const { return steps_; }
  double total_ms() const { return rounded(last_ - began_); }

 private:
  static double rounded(std::chrono::steady_clock::duration d) {
    return std::round(std::chrono::duration<double, std::milli>(d).count() * 10) / 10;
  }
  std::chrono::steady_clock::time_point began_ = std::chrono::steady_clock::now(), last_ = began_;
  nlohmann::json steps_ = nlohmann::json::object();
};

}  // namespace tp
