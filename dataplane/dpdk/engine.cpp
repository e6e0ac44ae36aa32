#include "engine.hpp"

#include <rte_prefetch.h>

#include <algorithm>

#include "eth_output.hpp"
#include "parse.hpp"
#include "rewrite.hpp"

namespace tp {
namespace {

// Packets ahead of the one being parsed whose first cache line is prefetched.
constexpr uint16_t kPrefetchAhead = 4;

}  // namespace

void Engine::except(EngineOutput& out, PortCounters& port, rte_mbuf* m, Reason r) {
  c_.reasons[static_cast<std::size_t>(r)].add(1);
  if (is_drop(r)) {
    port.dropped.add(1);
    out.drop.push(m, r);
  } else {
    port.punted.add(1);
    out.punt.push(m, r);
  }
}

// IPv6 candidates no flow matched, when the kernel does not track IPv6: the client rule of the
// destination (from the upstream to a client); failing that, unless the destination lies in a
// downstream prefix (the kernel routes between downstreams), the rule of the source's /64
// (from a client toward the upstream). Rules are keyed by one address; whether the other end is
// the box itself (on another port, or on none) or in a local prefix is checked after a hit, on the
// few prefixes the topology lists, and such a packet is the kernel's (Reason::local).
void Engine::match_rules6(uint8_t in_port, const Topology& topo, Parsed* meta, const uint16_t* at,
                          uint16_t n, FlowAction** action) const {
  RuleKey6 client[kMaxBurst], marker[kMaxBurst], from[kMaxBurst];
  const RuleKey6 *client_p[kMaxBurst], *marker_p[kMaxBurst], *from_p[kMaxBurst];
  uint16_t idx[kMaxBurst];
  uint16_t m = 0;
  for (uint16_t j = 0; j < n; ++j) {
    const uint16_t i = at[j];
    if (action[i] || meta[i].to_local) continue;
    const FlowKey6& k = meta[i].k6;
    client[m] = rule_key6(k.dst.data(), Rule6::client, in_port, k.vlan);
    marker[m] = rule_key6(k.dst.data(), Rule6::to_prefix, kAnyPort, 0);
    from[m] = rule_key6(k.src.data(), Rule6::from_prefix, in_port, k.vlan);
    client_p[m] = &client[m];
    marker_p[m] = &marker[m];
    from_p[m] = &from[m];
    idx[m++] = i;
  }
  if (!m) return;
  FlowAction *to_client[kMaxBurst], *unused[kMaxBurst], *to_up[kMaxBurst];
  const uint64_t hit_client = t_.rules6->lookup_bulk(client_p, m, to_client);
  const uint64_t hit_marker = t_.rules6->lookup_bulk(marker_p, m, unused);
  const uint64_t hit_from = t_.rules6->lookup_bulk(from_p, m, to_up);
  for (uint16_t j = 0; j < m; ++j) {
    FlowAction* a = nullptr;
    if ((hit_client >> j) & 1)
      a = to_client[j];
    else if (!((hit_marker >> j) & 1) && ((hit_from >> j) & 1))
      a = to_up[j];
    if (!a) continue;
    Parsed& p = meta[idx[j]];
    for (uint8_t k = 0; k < topo.n_kernel_only6 && a; ++k)
      if (topo.kernel_only6[k].contains(p.k6.src.data()) ||
          topo.kernel_only6[k].contains(p.k6.dst.data())) {
        a = nullptr;
        p.to_local = true;
      }
    action[idx[j]] = a;
  }
}

void Engine::process(uint8_t in_port, rte_mbuf** pkts, uint16_t n, uint32_t now,
                     EngineOutput& out) {
  const Topology& topo = *t_.topology->get();
  const PortInfo& port_info = topo.ports[in_port % kMaxPorts];
  PortCounters& in = c_.ports[in_port % kMaxPorts];
  // Read once: a limit reached during this burst takes effect from the next one.
  const uint32_t blocked = t_.limits->blocked();

  // 1. Classify: parse every packet, build the keys of the fast-path candidates.
  Parsed meta[kMaxBurst];
  Reason verdict[kMaxBurst];
  const FlowKey4* keys4[kMaxBurst];
  const FlowKey6* keys6[kMaxBurst];
  uint16_t at4[kMaxBurst], at6[kMaxBurst];
  uint16_t n4 = 0, n6 = 0;
  uint64_t rx_bytes = 0;
  std::array<uint64_t, kMaxPorts> tx_bytes{};  // this burst's, for the data limits
  for (uint16_t i = 0; i < kPrefetchAhead && i < n; ++i)
    rte_prefetch0(rte_pktmbuf_mtod(pkts[i], void*));
  for (uint16_t i = 0; i < n; ++i) {
    if (i + kPrefetchAhead < n) rte_prefetch0(rte_pktmbuf_mtod(pkts[i + kPrefetchAhead], void*));
    verdict[i] =
        port_info.enabled ? parse(pkts[i], in_port, port_info, meta[i]) : Reason::port_disabled;
    rx_bytes += meta[i].ip_bytes;
    if (verdict[i] != kCandidate) continue;
    if (meta[i].version == 4) {
      keys4[n4] = &meta[i].k4;
      at4[n4++] = i;
    } else {
      keys6[n6] = &meta[i].k6;
      at6[n6++] = i;
    }
  }
  in.rx_packets.add(n);
  in.rx_ip_bytes.add(rx_bytes);

  // 2. Look up: one bulk lookup per family; the table prefetches its buckets and entries.
  FlowAction* found4[kMaxBurst];
  FlowAction* found6[kMaxBurst];
  FlowAction* action[kMaxBurst];
  const uint64_t hit4 = n4 ? t_.v4->lookup_bulk(keys4, n4, found4) : 0;
  const uint64_t hit6 = n6 ? t_.v6->lookup_bulk(keys6, n6, found6) : 0;
  for (uint16_t j = 0; j < n4; ++j) action[at4[j]] = (hit4 >> j) & 1 ? found4[j] : nullptr;
  for (uint16_t j = 0; j < n6; ++j) action[at6[j]] = (hit6 >> j) & 1 ? found6[j] : nullptr;
  if (t_.rules6 && __builtin_popcountll(hit6) != n6)
    match_rules6(in_port, topo, meta, at6, n6, action);

  // 3. Rewrite and 4. output, in arrival order so that each flow keeps its packet order.
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = pkts[i];
    if (verdict[i] != kCandidate) {
      except(out, in, m, verdict[i]);
      continue;
    }
    FlowAction* a = action[i];
    if (!a) {
      except(out, in, m, meta[i].to_local ? Reason::local : Reason::unknown_flow);
      continue;
    }
    const uint16_t route = a->route.load(std::memory_order_relaxed);
    const NextHop& nh = topo.nexthops[FlowAction::nexthop_of(route) % kMaxNextHops];
    const PortInfo& egress = topo.ports[nh.port % kMaxPorts];
    if (!nh.valid || !egress.enabled) {
      except(out, in, m, Reason::no_nexthop);
      continue;
    }
    if (((blocked >> (in_port % kMaxPorts)) | (blocked >> (nh.port % kMaxPorts))) & 1) {
      except(out, in, m, Reason::data_limit);
      continue;
    }
    const Parsed& p = meta[i];
    if (p.ip_bytes > std::min(nh.mtu, p.version == 4 ? egress.mtu : egress.mtu6)) {
      except(out, in, m, Reason::too_big);
      continue;
    }
    if (!eth_output_fits(m, p, nh)) {
      except(out, in, m, Reason::no_headroom);
      continue;
    }
    uint8_t* frame = rte_pktmbuf_mtod(m, uint8_t*);
    if (p.version == 4)
      rewrite_ipv4(frame, p, *a, FlowAction::rewrite_of(route));
    else
      rewrite_ipv6(frame, p);
    eth_output(m, p, nh);

    a->packets.store(a->packets.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    a->bytes.store(a->bytes.load(std::memory_order_relaxed) + p.ip_bytes,
                   std::memory_order_relaxed);
    a->last_seen.store(now, std::memory_order_relaxed);
    in.fwd_rx_packets.add(1);
    in.fwd_rx_bytes.add(p.ip_bytes);
    PortCounters& eg = c_.ports[nh.port % kMaxPorts];
    eg.fwd_tx_packets.add(1);
    eg.fwd_tx_bytes.add(p.ip_bytes);

    EngineOutput::List& q = out.tx[nh.port % kMaxPorts];
    if (q.n == 0) out.tx_ports[out.n_tx_ports++] = static_cast<uint8_t>(nh.port % kMaxPorts);
    q.pkts[q.n++] = m;
    tx_bytes[nh.port % kMaxPorts] += p.ip_bytes;
  }
  t_.limits->charge(in_port, rx_bytes);
  for (uint16_t j = 0; j < out.n_tx_ports; ++j)
    t_.limits->charge(out.tx_ports[j], tx_bytes[out.tx_ports[j]]);
  c_.bursts.add(1);
  c_.packets.add(n);
}

}  // namespace tp
