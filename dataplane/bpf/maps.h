/* The kernel engine's map layouts, read by the BPF programs (C) and written by the loader (C++).
 * Every struct is padded by hand and its size asserted on both sides: the verifier and libbpf see
 * only bytes, so a layout drift between the two compilers would go unnoticed otherwise. Keys are
 * the engine-neutral FlowKey4 / FlowKey6 / RuleKey6 of dataplane/plan/flow_key.hpp, byte for
 * byte. Addresses and ports are in network order, everything else in host order. */
#ifndef TP_BPF_MAPS_H
#define TP_BPF_MAPS_H

#include <linux/types.h>

#include "reasons.h"

/* The layout of every map below (their types, keys, values, sizes and meaning). A daemon pins
 * its maps under <bpffs>/tetherpath/v<this> and the next run reuses them; libbpf checks only the
 * map type and the key and value sizes, so any change to a layout or to what a field means must
 * bump this, which sends the next run to a fresh directory (repopulated from conntrack). */
#define TP_MAP_LAYOUT_VERSION 2

#define TP_MAX_PORTS 16        /* tp::kMaxPorts */
#define TP_MAX_NEXTHOPS 4096   /* tp::kMaxNextHops */
#define TP_MAX_LOCAL_ADDRS 8   /* tp::kMaxLocalAddrs */
#define TP_MAX_KERNEL_ONLY6 32 /* tp::kMaxKernelOnly6 */
#define TP_ANY_PORT 0xff       /* tp::kAnyPort */

/* The topology (ports, next hops, kernel-only prefixes) lives in two banks: tp_ports holds
 * TP_BANKS * TP_MAX_PORTS entries, tp_nexthops TP_BANKS * TP_MAX_NEXTHOPS, tp_kernel_only6 one
 * value per bank. A program reads tp_config.bank once per packet and only that bank after it. The
 * loader writes the other bank, flips tp_config.bank, and waits for an RCU grace period before it
 * writes the old bank again, so no program ever reads an entry while it is written (an ARRAY
 * entry is updated in place) and an edit is seen whole or not at all. */
#define TP_BANKS 2

enum tp_reason {
#define TP_BPF_REASON_ENUM(name) TP_R_##name,
  TP_REASONS(TP_BPF_REASON_ENUM)
#undef TP_BPF_REASON_ENUM
      TP_R_COUNT
};

/* tc: skb->cb[0] holds this flag and the TCI of a tag the program put into skb->vlan_tci. */
#define TP_CB_VLAN_PUSHED 0x10000u

enum tp_rewrite { TP_RW_ROUTE = 0, TP_RW_SNAT = 1, TP_RW_DNAT = 2 }; /* tp::Rewrite */
enum tp_rule6 { TP_RULE_CLIENT = 1, TP_RULE_FROM_PREFIX = 2, TP_RULE_TO_PREFIX = 3 };

struct tp_key4 { /* tp::FlowKey4 */
  __u32 src;
  __u32 dst;
  __u16 sport; /* ICMP echo: the identifier */
  __u16 dport; /* ICMP echo: the type, network order */
  __u8 proto;
  __u8 port;
  __u16 vlan;
};

struct tp_key6 { /* tp::FlowKey6 */
  __u8 src[16];
  __u8 dst[16];
  __u16 sport;
  __u16 dport;
  __u8 proto;
  __u8 port;
  __u16 vlan;
};

struct tp_rule_key6 { /* tp::RuleKey6 */
  __u8 addr[16];
  __u8 kind;
  __u8 port;
  __u16 vlan;
  __u32 zero;
};

/* One flow direction or IPv6 rule. Written whole by the control thread when the entry is created
 * (a hash map update replaces the element, so readers see the old or the new value); afterwards
 * only the programs write it. packets and ip_bytes take one atomic add each per forwarded packet:
 * nothing binds a flow direction to one CPU (RPS, a device without RSS, a rehashed queue), and a
 * plain add racing on two CPUs would lose counts. last_used_ns is a plain store, made only when it
 * moved by a second: a store lost to a race is made again by the next packet. */
struct tp_action {
  __u32 nat_addr; /* network order */
  __u16 nat_port; /* network order; ICMP echo: the identifier */
  __u16 nexthop;  /* index into tp_nexthops */
  __u16 csum_l3;  /* tp::CsumDeltas, host-order values of the folded deltas */
  __u16 csum_l4_addr;
  __u16 csum_l4_port;
  __u8 rewrite; /* enum tp_rewrite */
  __u8 pad;
  __u64 last_used_ns; /* the programs' clock (tp_now(), BpfFastPath::clock_ms()) */
  __u64 packets;      /* forwarded by this entry */
  __u64 ip_bytes;     /* their IP bytes (total length), as FlowUsage::bytes */
};

struct tp_port {
  __u8 enabled;
  __u8 rawip; /* the device has no link-layer header (rmnet, tun) */
  __u8 n_local4;
  __u8 n_local6;
  __u8 mac[6];
  __u16 mtu;
  __u16 mtu6;
  __u8 tc_egress; /* tp_tc_egress charges the data limit for what leaves by this port */
  __u8 pad;
  __u32 ifindex; /* the device packets leave by; 0 until the loader knows it */
  __u32 pad2;    /* local6 8-byte aligned: the program compares it a word at a time */
  __u32 local4[TP_MAX_LOCAL_ADDRS];
  __u8 local6[TP_MAX_LOCAL_ADDRS][16];
};

struct tp_nexthop {
  __u8 dst_mac[6];
  __u8 src_mac[6];
  __u16 port;
  __u16 mtu; /* route MTU, 0xffff: none */
  __u16 vlan;
  __u8 valid;
  __u8 pad;
};

struct tp_prefix6 { /* tp::Prefix6: halves loaded from the address bytes as they are */
  __u64 hi;
  __u64 lo;
  __u64 mask_hi;
  __u64 mask_lo;
};

/* One bank's kernel-only prefixes and their count, in one value. */
struct tp_kernel_only6 {
  __u32 n;
  __u32 pad;
  struct tp_prefix6 prefix[TP_MAX_KERNEL_ONLY6];
};

/* One value every packet reads. The daemon stores heartbeat_ns (the programs' clock, tp_now())
 * periodically; once it is older than heartbeat_bound_ns (0: never),
 * every packet goes to the kernel (stale_heartbeat), so a daemon that hangs or dies without
 * detaching leaves no flow forwarded with a NAT mapping or next hop the kernel has since changed.
 * The loader maps the array (BPF_F_MMAPABLE) and stores the heartbeat fields with single 8-byte
 * stores, so a program never reads one half-written. */
struct tp_config {
  __u32 bank; /* the published bank, 0 or 1: one byte changes, so a reader sees either */
  __u32 pad;
  __u64 heartbeat_ns;
  __u64 heartbeat_bound_ns;
};

/* Per CPU, plain adds. What the kernel sends out of a port is not seen apart from what tc
 * redirected to it: tc egress counts both (egress_*), the ingress program counts its own redirects
 * to a port with that egress program (fwd_tx_tc_*), and the reader takes the difference. XDP
 * redirects never pass tc egress. */
struct tp_port_totals { /* read into tp::PortCounts (BpfFastPath::port_counts) */
  __u64 rx_packets, rx_ip_bytes;
  __u64 fwd_rx_packets, fwd_rx_bytes;
  __u64 fwd_tx_packets, fwd_tx_bytes;
  __u64 punted, dropped;
  __u64 egress_packets, egress_ip_bytes;
  __u64 fwd_tx_tc_packets, fwd_tx_tc_bytes;
};

/* Data limits: `used` is charged with one atomic add per packet, only while armed. */
struct tp_limit {
  __u64 armed;
  __u64 limit;
  __u64 used;
};

#ifdef __cplusplus
#define TP_STATIC_ASSERT static_assert
#else
#define TP_STATIC_ASSERT _Static_assert
#endif
TP_STATIC_ASSERT(sizeof(struct tp_key4) == 16, "tp_key4 is FlowKey4");
TP_STATIC_ASSERT(sizeof(struct tp_key6) == 40, "tp_key6 is FlowKey6");
TP_STATIC_ASSERT(sizeof(struct tp_rule_key6) == 24, "tp_rule_key6 is RuleKey6");
TP_STATIC_ASSERT(sizeof(struct tp_action) == 40, "tp_action layout");
TP_STATIC_ASSERT(sizeof(struct tp_port) == 184, "tp_port layout");
TP_STATIC_ASSERT(sizeof(struct tp_nexthop) == 20, "tp_nexthop layout");
TP_STATIC_ASSERT(sizeof(struct tp_prefix6) == 32, "tp_prefix6 layout");
TP_STATIC_ASSERT(sizeof(struct tp_kernel_only6) == 8 + 32 * TP_MAX_KERNEL_ONLY6,
                 "tp_kernel_only6 layout");
TP_STATIC_ASSERT(sizeof(struct tp_config) == 24, "tp_config layout");
TP_STATIC_ASSERT(sizeof(struct tp_port_totals) == 96, "tp_port_totals layout");
TP_STATIC_ASSERT(sizeof(struct tp_limit) == 24, "tp_limit layout");
#undef TP_STATIC_ASSERT

#endif
