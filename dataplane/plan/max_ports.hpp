// How many ports one engine serves: the width of the per-port bit masks workers read per burst.
#pragma once

#include <cstdint>

namespace tp {

inline constexpr uint16_t kMaxPorts = 16;

}  // namespace tp
