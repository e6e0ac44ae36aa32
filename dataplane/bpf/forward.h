/* The forwarding core both hooks share: classify a frame exactly as the DPDK engine's parse()
 * does, look its flow or IPv6 rule up, and decide (forward through a next hop, or a named reason
 * for the kernel). It reads the packet and never writes it: the tc and XDP wrappers apply the
 * decision with their own means (skb helpers, or the bytes), because only tc can keep a
 * CHECKSUM_PARTIAL/COMPLETE skb right.
 *
 * Every packet read is checked against data_end; lengths are judged against the frame's full
 * length (tc: skb->len, which may exceed the linear part), so a lying length field is malformed
 * on either hook. */
#ifndef TP_BPF_FORWARD_H
#define TP_BPF_FORWARD_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "map_defs.h"

#define TP_FORWARD TP_R_COUNT /* "no exception": the decision is to forward */
#define TP_NSEC_PER_SEC 1000000000ull
#define TP_ETH_HLEN 14
#define TP_VLAN_HLEN 4

enum { TP_TAG_NONE = 0, TP_TAG_INBAND = 1, TP_TAG_HWACCEL = 2 };

/* What the hook knows about the frame before parsing it. */
struct tp_in {
  void* data;
  void* data_end;
  __u32 len;   /* the whole frame; tc: skb->len */
  __u8 rawip;  /* no link-layer header: the frame starts with the IP header */
  __u8 hw_tag; /* tc: the outer 802.1Q/802.1ad tag was taken off into skb->vlan_tci */
  __u16 hw_tci;
  __u16 gso_size; /* tc: GSO/GRO super-packet's segment payload size, 0 otherwise */
};

struct tp_pkt {
  __u16 l3_off;
  __u16 l4_off;
  __u16 l4_hlen;  /* TCP data offset or UDP header, for the GSO MTU check */
  __u16 ip_bytes; /* IP total length, once the header was found sane */
  __u16 tci;      /* the tag as received (priority bits are kept on retagging) */
  __u8 tag;       /* TP_TAG_* */
  __u8 version;
  __u8 proto;
  __u8 to_local;
  union {
    struct tp_key4 k4;
    struct tp_key6 k6;
  };
};

/* 1: the programs' clock is CLOCK_MONOTONIC_COARSE, the time of the last tick, read from memory.
 * bpf_ktime_get_ns reads the clock source itself, which on a VM's kvm-clock took 11 % of the tc
 * hook's NAPI time and 22 % of the XDP hook's (perf, docs/performance.md); the heartbeat
 * and last-used times need no finer than a tick. The loader sets 0 before loading on a kernel
 * without bpf_ktime_get_coarse_ns (before 5.11; the tc hook runs there, the XDP hook needs 5.18):
 * the verifier never walks a branch that a frozen .rodata constant rules out, so such a kernel
 * never sees the call. */
const volatile __u8 tp_coarse_clock = 1;

static __always_inline __u64 tp_now(void) {
  return tp_coarse_clock ? bpf_ktime_get_coarse_ns() : bpf_ktime_get_ns();
}

struct tp_decision {
  struct tp_action* a;
  struct tp_nexthop* nh;
  struct tp_port* egress;
  __u32 out_port;
  __u64 now;               /* tp_now(), when the heartbeat check read it already */
  struct tp_limit* lim_in; /* the ports' data limits, once looked up */
  struct tp_limit* lim_out;
};

static __always_inline int tp_is_vlan(__u16 ether_type_be) {
  return ether_type_be == bpf_htons(ETH_P_8021Q) || ether_type_be == bpf_htons(ETH_P_8021AD);
}

static __always_inline void tp_count_reason(__u32 r) {
  __u64* c = bpf_map_lookup_elem(&tp_reasons, &r);
  if (c) *c += 1;
}

/* What a packet takes from tp_config, read once: the bank it reads the topology from, and the
 * heartbeat (maps.h). */
struct tp_state {
  __u32 bank;
  __u64 heartbeat_ns;
  __u64 heartbeat_bound_ns;
};

static __always_inline void tp_read_config(struct tp_state* st) {
  __u32 zero = 0;
  struct tp_config* c = bpf_map_lookup_elem(&tp_config, &zero);
  if (!c) return;
  st->bank = c->bank & 1;
  st->heartbeat_ns = c->heartbeat_ns;
  st->heartbeat_bound_ns = c->heartbeat_bound_ns;
}

static __always_inline struct tp_port* tp_port_of(__u32 bank, __u32 port) {
  __u32 k = bank * TP_MAX_PORTS + port % TP_MAX_PORTS;
  return bpf_map_lookup_elem(&tp_ports, &k);
}

static __always_inline struct tp_port_totals* tp_totals(__u32 port) {
  return bpf_map_lookup_elem(&tp_port_totals, &port);
}

/* A port's data limit, looked up once per packet and port, then asked and charged. */
static __always_inline struct tp_limit* tp_limit_of(__u32 port) {
  return bpf_map_lookup_elem(&tp_limits, &port);
}

/* Used bytes reached the limit, read per packet: a limit takes effect with the next packet on
 * every CPU, so the fast path's overshoot is one packet per CPU. */
static __always_inline int tp_blocked(const struct tp_limit* l) {
  return l && l->armed && l->used >= l->limit;
}

static __always_inline void tp_charge(struct tp_limit* l, __u64 bytes) {
  if (l && bytes && l->armed) __sync_fetch_and_add(&l->used, bytes);
}

/* TCP/UDP/ICMP/ICMPv6 as detail::parse_l4. `avail` is what the IP header says follows. */
static __always_inline int tp_parse_l4(const struct tp_in* in, struct tp_pkt* p, __u32 avail,
                                       __u16* sport, __u16* dport) {
  __u8* l4 = (__u8*)in->data + p->l4_off;
  switch (p->proto) {
    case IPPROTO_TCP: {
      if (avail < 20) return TP_R_malformed;
      if ((void*)(l4 + 20) > in->data_end) return TP_R_malformed;
      __u8 doff = l4[12] >> 4;
      if (doff < 5 || doff * 4u > avail) return TP_R_malformed;
      if (l4[13] & 0x07) return TP_R_tcp_control; /* FIN, SYN, RST */
      p->l4_hlen = doff * 4;
      *sport = *(__u16*)l4;
      *dport = *(__u16*)(l4 + 2);
      return TP_FORWARD;
    }
    case IPPROTO_UDP:
      if (avail < 8) return TP_R_malformed;
      if ((void*)(l4 + 8) > in->data_end) return TP_R_malformed;
      p->l4_hlen = 8;
      *sport = *(__u16*)l4;
      *dport = *(__u16*)(l4 + 2);
      return TP_FORWARD;
    case IPPROTO_ICMP: {
      if (avail < 8) return TP_R_malformed;
      if ((void*)(l4 + 8) > in->data_end) return TP_R_malformed;
      __u8 type = l4[0];
      if (type == 8 || type == 0) {
        *sport = *(__u16*)(l4 + 4);
        *dport = bpf_htons(type);
        return TP_FORWARD;
      }
      return type == 3 || type == 4 || type == 5 || type == 11 || type == 12 ? TP_R_icmp_error
                                                                             : TP_R_icmp_other;
    }
    case IPPROTO_ICMPV6: {
      if (avail < 8) return TP_R_malformed;
      if ((void*)(l4 + 8) > in->data_end) return TP_R_malformed;
      __u8 type = l4[0];
      if (type == 128 || type == 129) {
        *sport = *(__u16*)(l4 + 4);
        *dport = bpf_htons(type);
        return TP_FORWARD;
      }
      if (type >= 133 && type <= 137) return TP_R_ndp;
      return type < 128 ? TP_R_icmp_error : TP_R_icmp_other;
    }
    default:
      return TP_R_unsupported_l4;
  }
}

static __always_inline int tp_parse_ipv4(const struct tp_in* in, const struct tp_port* port,
                                         struct tp_pkt* p) {
  __u8* ip = (__u8*)in->data + p->l3_off;
  __u32 avail = in->len - p->l3_off;
  if (avail < 20) return TP_R_malformed;
  if ((void*)(ip + 20) > in->data_end) return TP_R_malformed;
  __u8 ihl = ip[0] & 0x0f;
  if ((ip[0] >> 4) != 4 || ihl < 5) return TP_R_malformed;
  __u32 total = bpf_ntohs(*(__u16*)(ip + 2));
  if (total < ihl * 4u || total > avail) return TP_R_malformed;
  if (ihl > 5) return TP_R_ipv4_options;
  /* A corrupt header must reach the kernel's counters, not be "fixed" by an incremental update. */
  __u32 sum = 0;
#pragma unroll
  for (int i = 0; i < 10; i++) sum += *(__u16*)(ip + 2 * i);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  if (sum != 0xffff) return TP_R_malformed;
  p->ip_bytes = total;
  if (*(__u16*)(ip + 6) & bpf_htons(0x3fff)) return TP_R_fragment; /* MF or an offset */
  if (ip[8] <= 1) return TP_R_ttl_expired;
  __u32 dst = *(__u32*)(ip + 16);
  __u32 dst_host = bpf_ntohl(dst);
  if (dst_host == 0xffffffff || (dst_host >> 28) == 0xe) return TP_R_not_unicast_ip;
  if (port->n_local4) {
#pragma unroll
    for (int i = 0; i < TP_MAX_LOCAL_ADDRS; i++)
      if (i < port->n_local4 && port->local4[i] == dst) p->to_local = 1;
  }
  p->proto = ip[9];
  p->l4_off = p->l3_off + 20;
  p->k4.src = *(__u32*)(ip + 12);
  p->k4.dst = dst;
  p->k4.proto = p->proto;
  return tp_parse_l4(in, p, total - 20, &p->k4.sport, &p->k4.dport);
}

/* Not global unicast: unspecified, loopback, v4-mapped, link-local (fe80::/10), multicast. */
static __always_inline int tp_ipv6_non_global(const __u8* a) {
  if (a[0] == 0xff) return 1;
  if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) return 1;
  if (a[0] != 0) return 0;
  __u32 w0 = *(__u32*)a, w1 = *(__u32*)(a + 4), w2 = *(__u32*)(a + 8), w3 = *(__u32*)(a + 12);
  if (w0 | w1) return 0;
  if (w2 == 0 && (bpf_ntohl(w3) >> 8) == 0) return a[15] <= 1;
  return w2 == bpf_htonl(0x0000ffff);
}

static __always_inline int tp_ipv6_is_ext(__u8 next) {
  switch (next) {
    case 0:
    case 43:
    case 44:
    case 60:
    case 51:
    case 135:
    case 139:
    case 140:
    case 253:
    case 254:
      return 1;
    default:
      return 0;
  }
}

/* RFC 8200 section 4, as detail::ipv6_ext_reason: tell a fragment from other extension headers.
 * A header the linear part of a non-linear skb does not hold is only named ipv6_ext_header (the
 * packet goes to the kernel either way). */
static __always_inline int tp_ipv6_ext_reason(const struct tp_in* in, __u32 off, __u32 avail,
                                              __u8 next) {
  for (int depth = 0; depth < 8; depth++) {
    __u32 len;
    if (next == IPPROTO_FRAGMENT) return avail < 8 ? TP_R_malformed : TP_R_fragment;
    if (!tp_ipv6_is_ext(next)) return TP_R_ipv6_ext_header;
    if (avail < 8) return TP_R_malformed;
    if (off > 0xfff0) return TP_R_ipv6_ext_header;
    __u8* ext = (__u8*)in->data + off;
    if ((void*)(ext + 2) > in->data_end) return TP_R_ipv6_ext_header;
    len = next == IPPROTO_AH ? (ext[1] + 2u) * 4 : (ext[1] + 1u) * 8;
    if (len > avail) return TP_R_malformed;
    next = ext[0];
    off += len;
    avail -= len;
  }
  return TP_R_ipv6_ext_header;
}

static __always_inline int tp_parse_ipv6(const struct tp_in* in, const struct tp_port* port,
                                         struct tp_pkt* p) {
  __u8* ip = (__u8*)in->data + p->l3_off;
  __u32 avail = in->len - p->l3_off;
  if (avail < 40) return TP_R_malformed;
  if ((void*)(ip + 40) > in->data_end) return TP_R_malformed;
  if ((ip[0] >> 4) != 6) return TP_R_malformed;
  __u32 total = bpf_ntohs(*(__u16*)(ip + 4)) + 40u;
  if (total > avail) return TP_R_malformed; /* also rejects jumbograms (payload 0 + HBH) */
  p->ip_bytes = total;
  if (ip[7] <= 1) return TP_R_ttl_expired;
  if (tp_ipv6_non_global(ip + 8) || tp_ipv6_non_global(ip + 24)) return TP_R_ipv6_non_global;
  if (port->n_local6) {
    __u64 d0 = *(__u64*)(ip + 24), d1 = *(__u64*)(ip + 32);
#pragma unroll
    for (int i = 0; i < TP_MAX_LOCAL_ADDRS; i++)
      if (i < port->n_local6 && *(__u64*)port->local6[i] == d0 &&
          *(__u64*)(port->local6[i] + 8) == d1)
        p->to_local = 1;
  }
  __u8 next = ip[6];
  if (tp_ipv6_is_ext(next)) return tp_ipv6_ext_reason(in, p->l3_off + 40u, total - 40, next);
  p->proto = next;
  p->l4_off = p->l3_off + 40;
  __builtin_memcpy(p->k6.src, ip + 8, 16);
  __builtin_memcpy(p->k6.dst, ip + 24, 16);
  p->k6.proto = next;
  return tp_parse_l4(in, p, total - 40, &p->k6.sport, &p->k6.dport);
}

/* As parse(): the same checks in the same order, so both engines name a packet alike. */
static __always_inline int tp_parse(const struct tp_in* in, __u32 in_port,
                                    const struct tp_port* port, struct tp_pkt* p) {
  __u16 ether_type;
  if (in->rawip) {
    /* No link layer: the version nibble says what follows. */
    if ((void*)((__u8*)in->data + 1) > in->data_end) return TP_R_malformed;
    __u8 v = *(__u8*)in->data >> 4;
    ether_type = v == 4 ? bpf_htons(ETH_P_IP) : v == 6 ? bpf_htons(ETH_P_IPV6) : 0;
    p->l3_off = 0;
  } else {
    if (in->len < TP_ETH_HLEN) return TP_R_runt;
    struct ethhdr* eth = in->data;
    if ((void*)(eth + 1) > in->data_end) return TP_R_malformed;
    ether_type = eth->h_proto;
    p->l3_off = TP_ETH_HLEN;
    if (in->hw_tag) {
      p->tag = TP_TAG_HWACCEL;
      p->tci = in->hw_tci;
      if (tp_is_vlan(ether_type)) return TP_R_vlan_stacked;
    } else if (tp_is_vlan(ether_type)) {
      if (in->len < TP_ETH_HLEN + TP_VLAN_HLEN) return TP_R_malformed;
      __u8* tag = (__u8*)in->data + TP_ETH_HLEN;
      if ((void*)(tag + TP_VLAN_HLEN) > in->data_end) return TP_R_malformed;
      p->tag = TP_TAG_INBAND;
      p->tci = bpf_ntohs(*(__u16*)tag);
      ether_type = *(__u16*)(tag + 2);
      p->l3_off = TP_ETH_HLEN + TP_VLAN_HLEN;
      if (tp_is_vlan(ether_type)) return TP_R_vlan_stacked;
    }
    if (ether_type == bpf_htons(ETH_P_ARP)) return TP_R_arp;
    if (eth->h_dest[0] & 1) return TP_R_l2_multicast;
    if (*(__u32*)eth->h_dest != *(__u32*)port->mac ||
        *(__u16*)(eth->h_dest + 4) != *(__u16*)(port->mac + 4))
      return TP_R_l2_other_host;
  }
  __u16 vlan = p->tag ? p->tci & 0x0fff : 0;
  if (ether_type == bpf_htons(ETH_P_IP)) {
    p->version = 4;
    p->k4.port = in_port;
    p->k4.vlan = vlan;
    return tp_parse_ipv4(in, port, p);
  }
  if (ether_type == bpf_htons(ETH_P_IPV6)) {
    p->version = 6;
    p->k6.port = in_port;
    p->k6.vlan = vlan;
    return tp_parse_ipv6(in, port, p);
  }
  return TP_R_not_ip;
}

static __always_inline int tp_prefix6_contains(const struct tp_prefix6* pf, const __u8* addr) {
  __u64 h = *(const __u64*)addr, l = *(const __u64*)(addr + 8);
  return (h & pf->mask_hi) == pf->hi && (l & pf->mask_lo) == pf->lo;
}

/* As Engine::match_rules6: the client rule of the destination; failing that, unless the
 * destination lies in a downstream prefix (a to_prefix marker), the rule of the source's /64.
 * A hit to or from a kernel_only6 prefix is the kernel's (local). */
static __always_inline struct tp_action* tp_match_rules6(struct tp_pkt* p, __u32 in_port,
                                                         __u32 bank) {
  struct tp_rule_key6 k;
  __builtin_memset(&k, 0, sizeof(k));
  __builtin_memcpy(k.addr, p->k6.dst, 16);
  k.kind = TP_RULE_CLIENT;
  k.port = in_port;
  k.vlan = p->k6.vlan;
  struct tp_action* a = bpf_map_lookup_elem(&tp_rules6, &k);
  if (!a) {
    __builtin_memset(k.addr + 8, 0, 8);
    k.kind = TP_RULE_TO_PREFIX;
    k.port = TP_ANY_PORT;
    k.vlan = 0;
    if (bpf_map_lookup_elem(&tp_rules6, &k)) return 0;
    __builtin_memcpy(k.addr, p->k6.src, 8);
    k.kind = TP_RULE_FROM_PREFIX;
    k.port = in_port;
    k.vlan = p->k6.vlan;
    a = bpf_map_lookup_elem(&tp_rules6, &k);
    if (!a) return 0;
  }
  struct tp_kernel_only6* ko = bpf_map_lookup_elem(&tp_kernel_only6, &bank);
  if (!ko) return a;
  __u32 n = ko->n;
  for (__u32 i = 0; i < TP_MAX_KERNEL_ONLY6; i++) {
    if (i >= n) break;
    const struct tp_prefix6* pf = &ko->prefix[i];
    if (tp_prefix6_contains(pf, p->k6.src) || tp_prefix6_contains(pf, p->k6.dst)) {
      p->to_local = 1;
      return 0;
    }
  }
  return a;
}

/* The frame's size against the egress MTU. A GSO super-packet (tc only) is judged by the
 * segments it will be cut into, as the kernel's own forwarding does (skb_gso_validate_network_len);
 * the DPDK engine never sees one. */
static __always_inline int tp_too_big(const struct tp_in* in, const struct tp_pkt* p, __u32 mtu) {
  if (in->gso_size && p->l4_hlen)
    return (__u32)(p->l4_off - p->l3_off) + p->l4_hlen + in->gso_size > mtu;
  return p->ip_bytes > mtu;
}

/* Classify and look up: TP_FORWARD with `d` filled, or the reason for the kernel. */
static __always_inline int tp_decide(const struct tp_in* in, const struct tp_state* st,
                                     __u32 in_port, const struct tp_port* port, struct tp_pkt* p,
                                     struct tp_decision* d) {
  const __u32 bank = st->bank;
  if (!port->enabled) return TP_R_port_disabled;
  int r = tp_parse(in, in_port, port, p);
  if (r != TP_FORWARD) return r;
  if (st->heartbeat_bound_ns) {
    d->now = tp_now();
    /* Signed: a heartbeat stored after this packet read it may lie a little ahead of now. */
    if ((__s64)(d->now - st->heartbeat_ns) > (__s64)st->heartbeat_bound_ns)
      return TP_R_stale_heartbeat;
  }
  struct tp_action* a;
  if (p->version == 4) {
    a = bpf_map_lookup_elem(&tp_flows4, &p->k4);
  } else {
    a = bpf_map_lookup_elem(&tp_flows6, &p->k6);
    if (!a && !p->to_local) a = tp_match_rules6(p, in_port, bank);
  }
  if (!a) return p->to_local ? TP_R_local : TP_R_unknown_flow;
  __u32 nh_idx = bank * TP_MAX_NEXTHOPS + a->nexthop % TP_MAX_NEXTHOPS;
  struct tp_nexthop* nh = bpf_map_lookup_elem(&tp_nexthops, &nh_idx);
  if (!nh) return TP_R_no_nexthop;
  __u32 out_port = nh->port % TP_MAX_PORTS;
  struct tp_port* egress = tp_port_of(bank, out_port);
  if (!egress || !nh->valid || !egress->enabled) return TP_R_no_nexthop;
  d->lim_in = tp_limit_of(in_port);
  d->lim_out = tp_limit_of(out_port);
  if (tp_blocked(d->lim_in) || tp_blocked(d->lim_out)) return TP_R_data_limit;
  __u32 mtu = p->version == 4 ? egress->mtu : egress->mtu6;
  if (nh->mtu < mtu) mtu = nh->mtu;
  if (tp_too_big(in, p, mtu)) return TP_R_too_big;
  d->a = a;
  d->nh = nh;
  d->egress = egress;
  d->out_port = out_port;
  return TP_FORWARD;
}

/* Bookkeeping after the hook applied the decision. Data limits: every IP packet that arrives is
 * charged to its port's limit, whatever the verdict (a punted one is the kernel path's download);
 * a forwarded one also to its egress port, unless `charge_out` is 0: the packet passes the egress
 * device's tc egress program (tp_tc_egress, which sees what tc redirects to it), which charges it
 * and counts it among egress_*; fwd_tx_tc_* lets the reader take it out of them again. */
static __always_inline void tp_account(__u32 in_port, const struct tp_pkt* p, int r,
                                       const struct tp_decision* d, int charge_out) {
  struct tp_port_totals* in = tp_totals(in_port);
  if (in) {
    in->rx_packets += 1;
    in->rx_ip_bytes += p->ip_bytes;
  }
  if (p->ip_bytes) tp_charge(d->lim_in ? d->lim_in : tp_limit_of(in_port), p->ip_bytes);
  if (r != TP_FORWARD) {
    tp_count_reason(r);
    /* Only a half-rewritten frame is dropped: even a runt is the kernel's to discard. */
    if (in) {
      if (r == TP_R_rewrite_failed)
        in->dropped += 1;
      else
        in->punted += 1;
    }
    return;
  }
  if (in) {
    in->fwd_rx_packets += 1;
    in->fwd_rx_bytes += p->ip_bytes;
  }
  struct tp_port_totals* out = tp_totals(d->out_port);
  if (out) {
    out->fwd_tx_packets += 1;
    out->fwd_tx_bytes += p->ip_bytes;
    if (!charge_out) {
      out->fwd_tx_tc_packets += 1;
      out->fwd_tx_tc_bytes += p->ip_bytes;
    }
  }
  if (charge_out) tp_charge(d->lim_out, p->ip_bytes);
  __sync_fetch_and_add(&d->a->packets, 1);
  __sync_fetch_and_add(&d->a->ip_bytes, p->ip_bytes);
  /* At most one store a second per flow: the keepalives need no finer time. */
  __u64 now = d->now ? d->now : tp_now();
  if (now - d->a->last_used_ns >= TP_NSEC_PER_SEC) d->a->last_used_ns = now;
}

/* RFC 1624: a checksum field (as stored) moved by one of the plan's deltas. */
static __always_inline void tp_csum_apply(__u16* field, __u16 delta) {
  __u32 sum = (__u16)~bpf_ntohs(*field) + (__u32)delta;
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  *field = bpf_htons((__u16)~sum);
}

/* The deltas of the plan are numeric values of big-endian words; the kernel's checksum helpers
 * and raw loads work on the words as they sit in memory. */
static __always_inline __u32 tp_raw_delta(__u16 delta) { return bpf_htons(delta); }

#endif
