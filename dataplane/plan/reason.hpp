// Every packet the engine does not forward ends in exactly one named reason, counted per core.
// Punts go to the kernel through the exception path of the ingress port; drops are freed.
// Prefer punt: the kernel is the slow path and owns correctness (xdp-forward, Android offload.c).
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "reasons.h"

namespace tp {

enum class Reason : uint8_t {
#define TP_REASON_ENUM(name) name,
  TP_REASONS(TP_REASON_ENUM)
#undef TP_REASON_ENUM
      count_
};

inline constexpr std::size_t kReasonCount = static_cast<std::size_t>(Reason::count_);
inline constexpr Reason kFirstDropReason = Reason::runt;

constexpr bool is_drop(Reason r) { return r >= kFirstDropReason; }

inline constexpr std::array<std::string_view, kReasonCount> kReasonNames = {
#define TP_REASON_NAME(name) #name,
    TP_REASONS(TP_REASON_NAME)
#undef TP_REASON_NAME
};

constexpr std::string_view name(Reason r) { return kReasonNames[static_cast<std::size_t>(r)]; }

}  // namespace tp
