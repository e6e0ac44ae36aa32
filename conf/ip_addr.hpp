// An IPv4 or IPv6 address as the configuration, the API and the control plane handle it: family
// plus 16 bytes in network order (IPv4 in the first four). Comparable and hashable, for the
// kernel-state mirrors' maps. Parsing is strict (inet_pton): "192.0.2" is not an address.
#pragma once

#include <arpa/inet.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tp {

struct IpAddr {
  uint8_t family = 0;  // AF_INET or AF_INET6
  std::array<uint8_t, 16> bytes{};

  static IpAddr v4(uint32_t be) {
    IpAddr a;
    a.family = AF_INET;
    std::memcpy(a.bytes.data(), &be, 4);
    return a;
  }
  static IpAddr v6(const void* p) {
    IpAddr a;
    a.family = AF_INET6;
    std::memcpy(a.bytes.data(), p, 16);
    return a;
  }
  static std::optional<IpAddr> parse(const std::string& s) {
    IpAddr a;
    if (inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) {
      a.family = AF_INET;
      return a;
    }
    if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) == 1) {
      a.family = AF_INET6;
      return a;
    }
    return std::nullopt;
  }
  uint32_t v4_be() const {
    uint32_t v;
    std::memcpy(&v, bytes.data(), 4);
    return v;
  }
  int length() const { return family == AF_INET ? 4 : 16; }
  std::string str() const {
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(family, bytes.data(), buf, sizeof buf);
    return buf;
  }
  // True when the first `len` bits equal those of `prefix`.
  bool in(const IpAddr& prefix, int len) const {
    if (family != prefix.family) return false;
    int full = len / 8, rest = len % 8;
    if (std::memcmp(bytes.data(), prefix.bytes.data(), full) != 0) return false;
    if (!rest) return true;
    const uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
    return (bytes[full] & mask) == (prefix.bytes[full] & mask);
  }
  bool operator==(const IpAddr&) const = default;
  auto operator<=>(const IpAddr&) const = default;
};

// address/length. Host bits may be set (an integrator writes 192.168.50.1/24 for "wifi0's
// network"); matching only looks at the first `len` bits.
struct Prefix {
  IpAddr addr;
  int len = 0;

  // Strict: the address must parse with inet_pton and the length be plain decimal digits within
  // the family's range ("192.0.2/24", "10.0.0.0/", "10.0.0.0/+8" are all rejected).
  static std::optional<Prefix> parse(std::string_view text) {
    const std::size_t slash = text.find('/');
    if (slash == std::string_view::npos) return std::nullopt;
    const std::string_view digits = text.substr(slash + 1);
    if (digits.empty() || digits.size() > 3) return std::nullopt;
    int len = 0;
    for (char c : digits) {
      if (c < '0' || c > '9') return std::nullopt;
      len = len * 10 + (c - '0');
    }
    auto a = IpAddr::parse(std::string(text.substr(0, slash)));
    if (!a || len > a->length() * 8) return std::nullopt;
    return Prefix{*a, len};
  }
  bool contains(const IpAddr& a) const { return a.in(addr, len); }
  // One holds the other (prefixes either nest or are apart).
  bool overlaps(const Prefix& o) const { return contains(o.addr) || o.contains(addr); }
  std::string str() const { return addr.str() + "/" + std::to_string(len); }
  bool operator==(const Prefix&) const = default;
};

inline bool in_any(const IpAddr& a, const std::vector<Prefix>& prefixes) {
  for (const Prefix& p : prefixes)
    if (p.contains(a)) return true;
  return false;
}

struct IpAddrHash {
  std::size_t operator()(const IpAddr& a) const {
    std::size_t h = a.family;
    for (uint8_t b : a.bytes) h = h * 131 + b;
    return h;
  }
};

}  // namespace tp
