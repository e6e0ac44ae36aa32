// What an engine needs to know about ports, next hops and the IPv6 addresses no rule may forward:
// the control plane edits one snapshot and each engine publishes it its own way (the DPDK engine
// by RCU, topology_publisher.hpp; the BPF engine entry by entry into its maps).
#pragma once

#include <array>
#include <cstdint>
#include <cstring>

#include "max_ports.hpp"

namespace tp {

inline constexpr uint16_t kMaxNextHops = 4096;
inline constexpr uint16_t kMaxLocalAddrs = 8;
inline constexpr uint16_t kMaxKernelOnly6 = 32;
inline constexpr uint16_t kNoRouteMtu = UINT16_MAX;

// A MAC address as it sits in a frame (the layout of rte_ether_addr and of struct ethhdr's fields).
struct EtherAddr {
  uint8_t addr_bytes[6] = {};
  bool operator==(const EtherAddr&) const = default;
};

struct PortInfo {
  bool enabled = false;
  EtherAddr mac{};
  // What the kernel would send out of the port's TAP, IPv4 and IPv6 (the IPv6 MTU is lower when a
  // router advertised one), never above the port's configured MTU. Followed while running.
  uint16_t mtu = 1500;
  uint16_t mtu6 = 1500;
  // The box's own addresses on this port: traffic to them is punted (Reason::local).
  uint8_t n_local4 = 0;
  uint8_t n_local6 = 0;
  std::array<uint32_t, kMaxLocalAddrs> local4{};  // network order
  std::array<std::array<uint8_t, 16>, kMaxLocalAddrs> local6{};
};

// Where a flow direction leaves: egress port, the MACs to write, the VLAN tag to carry (0: none)
// and the MTU of the route it was chosen by, if that route has one. A packet above it or above the
// egress port's MTU is the kernel's (it fragments or answers Packet Too Big).
struct NextHop {
  EtherAddr dst_mac{};
  EtherAddr src_mac{};
  uint16_t port = 0;
  uint16_t mtu = kNoRouteMtu;
  uint16_t vlan = 0;
  bool valid = false;
};

// An IPv6 prefix as its two 64-bit halves and their masks, loaded from the address bytes as they
// are (compared, never interpreted as numbers).
struct Prefix6 {
  uint64_t hi = 0, lo = 0, mask_hi = 0, mask_lo = 0;
  bool contains(const uint8_t* addr) const {
    uint64_t h, l;
    std::memcpy(&h, addr, 8);
    std::memcpy(&l, addr + 8, 8);
    return ((h & mask_hi) == hi) & ((l & mask_lo) == lo);
  }
};

struct Topology {
  std::array<PortInfo, kMaxPorts> ports{};
  std::array<NextHop, kMaxNextHops> nexthops{};
  // IPv6 address rules (offload.ipv6: neighbours) forward nothing to or from these: the box's own
  // addresses, on any interface, and the local prefixes. Flows are decided by the policy instead.
  uint8_t n_kernel_only6 = 0;
  std::array<Prefix6, kMaxKernelOnly6> kernel_only6{};
};

}  // namespace tp
