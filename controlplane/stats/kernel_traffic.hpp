// The kernel path's share of per-client traffic: what the kernel forwards between a downstream
// interface and any other, counted per (client address, the other interface, conntrack mark) in
// nftables sets whose elements carry counters. The fast path's packets never reach them (XDP and
// tc redirect before netfilter, DPDK never hands them to the kernel), so the two paths add up
// without counting a packet twice. The chain runs after the filter chains: what they drop is not
// counted.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ip_addr.hpp"
#include "nftables.hpp"

namespace tp {

struct KernelTrafficCount {
  bool up = false;  // from the client (its source address), else to it
  IpAddr client;
  std::string iface;                // the interface on the other side (an uplink's)
  uint32_t mark = 0;                // the connection's conntrack mark
  uint64_t packets = 0, bytes = 0;  // IP bytes
  std::string element;              // names the counter: set and key
};

class KernelTraffic {
 public:
  // Counting between these downstream interfaces and the rest. Made again (its counters from
  // zero) only when the interfaces differ from the installed ones. IPv6 is keyed by the
  // connection's mark only when the kernel tracks IPv6 anyway, by the packet's otherwise.
  // Empty, or what went wrong.
  std::string install(const std::vector<std::string>& downstreams, bool ipv6_tracked);
  void remove();
  // Every counter now; on an error, none and `error` says it.
  std::vector<KernelTrafficCount> read(std::string& error);

  // One family's table; `tracked`: keyed by the conntrack mark, else by the packet's mark.
  static std::string table_text(const std::vector<std::string>& downstreams, bool v6, bool tracked);
  // The counters in `nft -j list table`'s output (what is not one of ours is skipped).
  static std::vector<KernelTrafficCount> parse(const std::string& json);

 private:
  Nftables nft_;
  std::vector<std::string> installed_;
  bool present_ = false;
  bool tracked6_ = false;
};

}  // namespace tp
