// Changes the kernel's conntrack entries on the fast path's behalf: NAT keepalives (refresh the
// timeout of flows only the fast path still sees), the liberal hand-back of TCP flows and the
// targeted removal of a failed uplink's entries. Updates
// go out many to a datagram; each gets its own acknowledgement, mapped back to its entry.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "conntrack_entry.hpp"

struct mnl_socket;

namespace tp {

// The kernel's own timeouts, read from the nf_conntrack_*_timeout_* sysctls (never hard-coded).
struct ConntrackTimeouts {
  uint32_t tcp_established = 432000;
  uint32_t udp = 30;
  uint32_t udp_stream = 120;
  uint32_t icmp = 30;
  uint32_t icmpv6 = 30;
  static ConntrackTimeouts read_sysctls();
  uint32_t for_entry(const CtEntry& e) const;
};

class ConntrackWriter {
 public:
  ConntrackWriter();  // throws std::runtime_error
  ~ConntrackWriter();
  ConntrackWriter(const ConntrackWriter&) = delete;
  ConntrackWriter& operator=(const ConntrackWriter&) = delete;

  struct Update {
    CtEntry entry;
    uint32_t timeout = 0;  // seconds; 0 leaves it
    bool liberal = false;  // TCP: stop window checking in both directions
    // Delete the entry instead (a failed uplink's flows: their NAT mapping leads nowhere now,
    // and the next packet must make a new one through the uplink the kernel picks).
    bool remove = false;
  };
  // Sends all updates batched; returns one result per update: 0, or the negative errno the
  // kernel answered (-ENOENT: the entry no longer exists).
  std::vector<int> apply(const std::vector<Update>& updates);

  // Deletes every entry (both families) whose mark has `mark` in the bits of `mask`: one
  // message, the kernel walking its table (a session's connections on an uplink it may no
  // longer use, when marks name both). 0, or the negative errno the kernel answered.
  int delete_marked(uint32_t mark, uint32_t mask);

  // The port id the kernel stamps on the events our updates cause (ConntrackMirror filters them).
  uint32_t portid() const;

  uint64_t messages = 0, datagrams = 0, applied = 0;

 private:
  mnl_socket* nl_ = nullptr;
  uint32_t seq_ = 1;
};

}  // namespace tp
