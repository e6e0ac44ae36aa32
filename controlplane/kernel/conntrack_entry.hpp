// One conntrack entry as the control plane needs it, decoupled from libnetfilter_conntrack so the
// offload policy can be unit-tested on plain values.
#pragma once

#include <cstdint>
#include <functional>

#include "ip_addr.hpp"

namespace tp {

// Ports in network order. ICMP/ICMPv6 echo: sport is the identifier, dport the type.
struct CtTuple {
  IpAddr src, dst;
  uint16_t sport = 0, dport = 0;
  bool operator==(const CtTuple&) const = default;
};

struct CtEntry {
  uint8_t family = 0;  // AF_INET / AF_INET6
  uint8_t proto = 0;
  uint16_t zone = 0;
  CtTuple orig, reply;
  uint32_t status = 0;  // IPS_* bits
  uint8_t tcp_state = 0;
  uint32_t mark = 0;
  bool has_helper = false;
  uint32_t id = 0;
  uint32_t timeout = 0;  // seconds left, as the kernel said in a dump or event (0: not said)
  // Which of the above an event carried: UPDATE events hold only what changed (a timeout refresh
  // brings no status or TCP state), so absent fields must not read as zero.
  enum : uint8_t { kStatus = 1, kTcpState = 2, kMark = 4 };
  uint8_t present = 0;
};

// Identity of an entry across events: the original tuple, protocol and zone.
struct CtKey {
  uint8_t family = 0;
  uint8_t proto = 0;
  uint16_t zone = 0;
  CtTuple orig;
  bool operator==(const CtKey&) const = default;
  static CtKey of(const CtEntry& e) { return {e.family, e.proto, e.zone, e.orig}; }
};

struct CtKeyHash {
  std::size_t operator()(const CtKey& k) const {
    IpAddrHash h;
    return h(k.orig.src) * 31 + h(k.orig.dst) * 17 + (std::size_t{k.orig.sport} << 16) +
           k.orig.dport + (std::size_t{k.proto} << 40) + (std::size_t{k.zone} << 48);
  }
};

}  // namespace tp
