// When NAT keepalives happen. The kernel forgets a conntrack entry (and its NAT mapping) one
// timeout after the last packet it saw; for an offloaded flow it sees almost none, so the control
// plane refreshes the timeouts of flows that carried traffic, and must do so well within each
// protocol's own timeout, whatever the configured interval says (ICMP's is 30 s by default, below
// the shipped interval of 60 s; an integrator may lower UDP's). And the fast path must never keep
// forwarding a flow whose entry the kernel has let expire: the kernel reaps expired entries
// lazily (its garbage collector may take up to a minute, and only then sends DESTROY), so an idle
// flow past its expiry is asked for; an entry that has expired answers ENOENT and the flow goes.
#pragma once

#include <algorithm>
#include <cstdint>

#include "conntrack_writer.hpp"

namespace tp {

// The round's period: the configured interval, but at most a third of the shortest timeout among
// the offloaded protocols (so that refresh + one round of lateness stays under two thirds of it).
inline uint32_t keepalive_tick_s(uint32_t configured_s, const ConntrackTimeouts& t, bool tcp,
                                 bool udp, bool icmp) {
  uint32_t shortest = UINT32_MAX;
  if (tcp) shortest = std::min(shortest, t.tcp_established);
  if (udp) shortest = std::min({shortest, t.udp, t.udp_stream});
  if (icmp) shortest = std::min({shortest, t.icmp, t.icmpv6});
  return std::max<uint32_t>(1, std::min(configured_s, shortest / 3));
}

// How long the kernel engine's programs may keep forwarding after the daemon's last heartbeat
// (BpfFastPath::set_heartbeat_bound): never past the conntrack entry of a flow they rewrite, or
// the kernel could hand that NAT mapping to another connection. A flow that carries traffic was
// refreshed at most one refresh period (<= tick) plus one round (tick) ago, so its entry lives at
// least `shortest - 2 * tick` more; the heartbeat itself is up to `heartbeat_ms` old. An idle
// flow's entry may expire sooner, as it may while the daemon runs (the next round probes it).
inline uint32_t liveness_bound_ms(const ConntrackTimeouts& t, bool tcp, bool udp, bool icmp,
                                  uint32_t tick_s, uint32_t heartbeat_ms) {
  uint64_t shortest = UINT32_MAX;
  if (tcp) shortest = std::min<uint64_t>(shortest, t.tcp_established);
  if (udp) shortest = std::min<uint64_t>({shortest, t.udp, t.udp_stream});
  if (icmp) shortest = std::min<uint64_t>({shortest, t.icmp, t.icmpv6});
  const int64_t bound =
      static_cast<int64_t>(shortest) * 1000 - 2 * int64_t{tick_s} * 1000 - int64_t{heartbeat_ms};
  return static_cast<uint32_t>(std::clamp<int64_t>(bound, heartbeat_ms + 1000, UINT32_MAX));
}

// What a refresh sets: what the kernel would have left had it seen the flow's last packet itself
// (the mapping then expires one timeout after that packet, as without offload), at least 1 s.
// The engine's clock is in ms modulo 2^32; a last use stamped a little ahead of the reading (the
// coarse and the fine clock side by side across an upgrade) counts as no idle time.
inline uint32_t refreshed_timeout_s(uint32_t timeout_s, uint32_t engine_ms, uint32_t last_used_ms) {
  const uint32_t ago = engine_ms - last_used_ms;
  const uint32_t idle_s = static_cast<int32_t>(ago) > 0 ? ago / 1000 : 0;
  return timeout_s - std::min(idle_s, timeout_s - 1);
}

enum class KeepaliveStep {
  none,
  refresh,  // carried traffic: set the kernel's timeout again
  probe,    // idle past its expiry as we last knew it: does the kernel still have it?
};

// For one flow. `timeout_s` is the protocol's current timeout for it, `known_timeout_s` what the
// kernel had left when we last set or saw it, `since_ms` how long ago that was.
inline KeepaliveStep keepalive_step(bool carried_traffic, uint64_t since_ms, uint32_t timeout_s,
                                    uint32_t known_timeout_s, uint32_t configured_s) {
  if (carried_traffic) {
    const uint64_t period_ms = std::min<uint64_t>(configured_s * 1000ull, timeout_s * 1000ull / 3);
    return since_ms >= period_ms ? KeepaliveStep::refresh : KeepaliveStep::none;
  }
  return since_ms >= known_timeout_s * 1000ull ? KeepaliveStep::probe : KeepaliveStep::none;
}

}  // namespace tp
