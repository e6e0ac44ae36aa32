// Byte counts as people type them (tetherctl set-limit): "10M" is 10 000 000. Header-only so that
// tetherctl, which links nothing of the daemon, and the unit tests share it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace tp {

struct ByteCount {
  uint64_t magnitude = 0;
  // Kept, not refused: the daemon's answer to a negative byte count (illegal_argument) is the
  // API's to give.
  bool negative = false;
};

// Decimal digits with an optional sign and at most one suffix k/K, M, G, T, P, E (powers of
// 1000). A count beyond what the API carries (2^64 - 1, or -2^63 for a negative one) is refused
// with `error` set, never wrapped.
inline std::optional<ByteCount> parse_byte_count(const std::string& s, std::string& error) {
  const std::string what = "expected a number of bytes (digits, then k, M, G, T, P or E), got '";
  ByteCount c;
  std::size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) c.negative = s[i++] == '-';
  const std::size_t digits = i;
  bool too_big = false;
  for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i)
    too_big |= __builtin_mul_overflow(c.magnitude, 10u, &c.magnitude) ||
               __builtin_add_overflow(c.magnitude, unsigned(s[i] - '0'), &c.magnitude);
  if (i == digits || s.size() - i > 1) {
    error = what + s + "'";
    return std::nullopt;
  }
  if (i < s.size()) {
    uint64_t scale = 0;
    switch (s[i]) {
      case 'k':
      case 'K':
        scale = 1000;
        break;
      case 'M':
        scale = 1000'000;
        break;
      case 'G':
        scale = 1000'000'000;
        break;
      case 'T':
        scale = 1000'000'000'000;
        break;
      case 'P':
        scale = 1000'000'000'000'000;
        break;
      case 'E':
        scale = 1000'000'000'000'000'000;
        break;
      default:
        error = what + s + "'";
        return std::nullopt;
    }
    too_big |= __builtin_mul_overflow(c.magnitude, scale, &c.magnitude);
  }
  if (too_big || (c.negative && c.magnitude > uint64_t{1} << 63)) {
    error = "'" + s + "' is too large: byte counts go up to " + std::to_string(UINT64_MAX) +
            " (about 18.4E)";
    return std::nullopt;
  }
  return c;
}

}  // namespace tp
