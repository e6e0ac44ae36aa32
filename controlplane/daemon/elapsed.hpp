// How long something the control thread did took, for replies and logs.
#pragma once

#include <chrono>

namespace tp {

inline double ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace tp
