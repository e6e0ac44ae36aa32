#include "offload_policy.hpp"

#include <algorithm>

#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_conntrack_tcp.h>
#include <netinet/in.h>

namespace tp {
namespace {

Decision refuse(std::string_view why) {
  Decision d;
  d.verdict = Decision::no;
  d.reason = why;
  return d;
}

Decision refuse_route(std::string_view why) {
  Decision d = refuse(why);
  d.verdict = Decision::wait_route;
  return d;
}

}  // namespace

Decision decide(const CtEntry& e, const KernelView& kernel, const PolicyConfig& cfg) {
  const bool icmp = e.proto == IPPROTO_ICMP || e.proto == IPPROTO_ICMPV6;
  if (e.family == AF_INET6 && !cfg.ipv6_conntrack) return refuse("ipv6_by_neighbours");
  if (!(e.status & IPS_CONFIRMED)) return refuse("not_confirmed");
  if (!(e.status & IPS_SEEN_REPLY)) return refuse("no_reply_yet");
  // The kernel never marks ICMP echo assured; a seen reply is its only sign of a live exchange.
  if (!icmp && !(e.status & IPS_ASSURED)) return refuse("not_assured");
  switch (e.proto) {
    case IPPROTO_TCP:
      if (!cfg.tcp) return refuse("protocol_disabled");
      if (e.tcp_state != TCP_CONNTRACK_ESTABLISHED) return refuse("tcp_not_established");
      break;
    case IPPROTO_UDP:
      if (!cfg.udp) return refuse("protocol_disabled");
      break;
    case IPPROTO_ICMP:
    case IPPROTO_ICMPV6:
      if (!cfg.icmp) return refuse("protocol_disabled");
      if (ntohs(e.orig.dport) != (e.proto == IPPROTO_ICMP ? 8 : 128))
        return refuse("icmp_not_echo");
      break;
    default:
      return refuse("protocol");
  }
  if (e.has_helper) return refuse("helper");
  if (cfg.no_offload_mask && (e.mark & cfg.no_offload_mask) == cfg.no_offload_mark)
    return refuse("marked_no_offload");
  if (kernel.is_local(e.orig.src) || kernel.is_local(e.orig.dst)) return refuse("local");
  if (in_any(e.orig.src, cfg.local_prefixes) || in_any(e.orig.dst, cfg.local_prefixes))
    return refuse("local_prefix");

  // ICMP carries its identifier in the port slots, which NAT may remap without translating the
  // address in that direction: only addresses say which side is translated.
  const bool do_snat = !(e.reply.dst == e.orig.src) || (!icmp && e.reply.dport != e.orig.sport);
  const bool do_dnat = !(e.reply.src == e.orig.dst) || (!icmp && e.reply.sport != e.orig.dport);
  if (do_snat && do_dnat) return refuse("double_nat");
  if ((do_snat || do_dnat) && e.family == AF_INET6) return refuse("ipv6_nat");

  // The original direction enters where its source lives (the main table's route to it: a
  // connected downstream). Where each direction leaves is the kernel's own routing decision for
  // that packet, asked with its input interface, addresses (after conntrack's NAT in
  // PREROUTING), mark and ports, so that ip rules, every table, blackholes and multipath agree
  // with the fast path by construction. The reply must leave where the original came in.
  const auto to_src = kernel.route(e.orig.src);
  if (!to_src) return refuse_route("no_route");
  const auto in_it = cfg.ports.find(to_src->oif);
  if (in_it == cfg.ports.end()) return refuse_route("not_our_ports");
  const uint32_t mark = e.mark & cfg.route_mark_mask;
  const uint32_t orig_mark = e.mark & (cfg.route_mark_mask | cfg.original_mark_mask);
  const Forwarding fo = kernel.forward(
      {to_src->oif, e.orig.src, e.reply.src, orig_mark, e.proto, e.orig.sport, e.reply.sport});
  if (!fo.refused.empty()) return refuse_route(fo.refused);
  const auto out_it = cfg.ports.find(fo.route.oif);
  if (out_it == cfg.ports.end()) return refuse_route("not_our_ports");
  const PortRole& in = in_it->second;
  const PortRole& out = out_it->second;
  if (in.upstream == out.upstream) return refuse_route("not_between_upstream_and_downstream");
  // The client's own address: the original source, or for a flow that came in from the upstream
  // (a port forward) the reply's source, i.e. after DNAT.
  const IpAddr& client = in.upstream ? e.reply.src : e.orig.src;
  if (!in_any(client, (in.upstream ? out : in).prefixes)) return refuse("not_downstream_prefix");
  if ((in.upstream ? in : out).limited) return refuse("data_limit");
  if (cfg.limited_mask && std::find(cfg.limited_marks.begin(), cfg.limited_marks.end(),
                                    e.mark & cfg.limited_mask) != cfg.limited_marks.end())
    return refuse("session_limit");
  if ((in.upstream ? in : out).emergency_only &&
      (e.mark & cfg.emergency_mask) != cfg.emergency_mark)
    return refuse("emergency_hold");
  if (cfg.garage && std::find(cfg.garage_marks.begin(), cfg.garage_marks.end(),
                              e.mark & cfg.garage_mask) == cfg.garage_marks.end())
    return refuse("garage_hold");
  // A masqueraded flow belongs to the uplink whose address it wears: leaving by another one, its
  // packets would carry a source address that uplink's network does not route back.
  if (do_snat && out.upstream && !kernel.has_address(fo.route.oif, e.reply.dst))
    return refuse_route("nat_address_elsewhere");
  const Forwarding fr = kernel.forward(
      {fo.route.oif, e.reply.src, e.orig.src, mark, e.proto, e.reply.sport, e.orig.sport});
  if (!fr.refused.empty()) return refuse_route(fr.refused);
  if (fr.route.oif != to_src->oif) return refuse_route("route_asymmetric");
  const RouteResult& to_dst = fo.route;
  const RouteResult& back = fr.route;

  Decision d;
  d.orig.in_port = in.port;
  d.orig.out_port = out.port;
  d.orig.out_ifindex = to_dst.oif;
  d.orig.next_hop = to_dst.next_hop;
  d.orig.mtu = to_dst.mtu;
  d.reply.in_port = out.port;
  d.reply.out_port = in.port;
  d.reply.out_ifindex = back.oif;
  d.reply.next_hop = back.next_hop;
  d.reply.mtu = back.mtu;
  const auto mac_out = kernel.neighbour(to_dst.oif, to_dst.next_hop);
  const auto mac_in = kernel.neighbour(back.oif, back.next_hop);
  if (!mac_out || !mac_in) {
    d.verdict = Decision::wait_neighbour;
    d.reason = "neighbour_unresolved";
    return d;
  }
  d.orig.next_hop_mac = *mac_out;
  d.reply.next_hop_mac = *mac_in;

  if (do_snat) {
    // Original: source becomes the reply's destination; reply: destination becomes the original
    // source. ICMP's identifier sits in sport in both tuples.
    d.orig.rewrite = Rewrite::snat;
    d.orig.nat_addr = e.reply.dst;
    d.orig.nat_port = icmp ? e.reply.sport : e.reply.dport;
    d.reply.rewrite = Rewrite::dnat;
    d.reply.nat_addr = e.orig.src;
    d.reply.nat_port = e.orig.sport;
  } else if (do_dnat) {
    d.orig.rewrite = Rewrite::dnat;
    d.orig.nat_addr = e.reply.src;
    d.orig.nat_port = e.reply.sport;
    d.reply.rewrite = Rewrite::snat;
    d.reply.nat_addr = e.orig.dst;
    d.reply.nat_port = icmp ? e.orig.sport : e.orig.dport;
  }
  d.verdict = Decision::offload;
  return d;
}

}  // namespace tp
