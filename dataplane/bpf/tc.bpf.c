/* tc ingress (clsact, direct-action): the forwarding core applied by direct packet access, with
 * the skb helpers for what depends on the skb's checksum state (tp_tc_apply), then bpf_redirect to
 * the egress device. Direct writes make the verifier put a prologue before the program that makes
 * a cloned skb private; if that copy fails (out of memory) the kernel drops the packet, uncounted.
 * A punt is TC_ACT_PIPE, not TC_ACT_OK: later tc filters on the device (a clat, a shaper's
 * classifier) still run, and then the kernel's normal path takes the packet (Android learnt this
 * the hard way, commit 6e66a36367). */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "forward.h"

/* Enough linear bytes for any header the core reads: Ethernet, one tag, IPv6, TCP with options. */
#define TP_TC_PULL 128

static __always_inline __u32 vlan_tci_of(const struct tp_pkt* p, __u16 vlan) {
  return p->tag ? (p->tci & 0xf000) | vlan : vlan;
}

static __always_inline int tp_tc_punt(__u32 in_port, const struct tp_pkt* p,
                                      const struct tp_decision* d, int r) {
  tp_account(in_port, p, r, d, 0);
  return TC_ACT_PIPE;
}

/* A frame a rewrite step refused after an earlier step had changed it: it may neither leave nor
 * reach the kernel half-rewritten, so it is dropped and counted. Cannot happen (tp_tc_apply). */
static __always_inline int tp_tc_drop(__u32 in_port, const struct tp_pkt* p,
                                      const struct tp_decision* d) {
  tp_account(in_port, p, TP_R_rewrite_failed, d, 0);
  return TC_ACT_SHOT;
}

/* skb->csum of a CHECKSUM_COMPLETE skb follows a 16-bit word of the network or transport header
 * going from `from` to `to` (both as stored); other skbs ignore it (-ENOTSUPP). */
static __always_inline void tp_tc_complete_follows(struct __sk_buff* skb, __u16 from, __u16 to) {
  bpf_csum_update(skb, (__u32)(__u16)~from + to);
}

/* The rewrite, after every check passed. The bytes are written directly (the verifier's prologue
 * has made a cloned skb private before the program ran); only what depends on the skb's checksum
 * state goes through helpers, which know it and the program cannot read it: the TCP/UDP checksum
 * (bpf_l4_csum_replace moves a CHECKSUM_PARTIAL skb's pseudo-header sum with the address and
 * leaves its data alone, and keeps a CHECKSUM_COMPLETE skb->csum right), skb->csum for the bytes
 * no checksum field compensates (bpf_csum_update), tags in skb->vlan_tci and a prepended link
 * layer. Two phases:
 * 1. Everything that can fail, with the frame as it arrived: making the bytes the rewrite touches
 *    linear, reading what the rewrite needs, prepending the link-layer header
 *    (bpf_skb_change_head changes nothing when it fails). A failure here is a punt: the kernel
 *    gets the frame untouched.
 * 2. The changes. None can fail: the helpers work inside the bytes phase 1 made linear (plus the
 *    prepended header); the checksum helpers get size 0 (a delta), which they always accept;
 *    popping a tag held in skb->vlan_tci only clears it, popping an in-frame one moves bytes
 *    already writable, and no second tag follows (vlan_stacked was punted); a push happens only
 *    when the frame carries no tag, so it only sets skb->vlan_tci. Each result is still checked:
 *    a failure drops the frame (tp_tc_drop) rather than send it on half-rewritten. The helpers
 *    come first, the direct writes last, since a helper that may move the data invalidates the
 *    program's packet pointers.
 * IPv4's header checksum compensates the TTL and address bytes, and the TCP/UDP checksum the
 * port, so neither changes a CHECKSUM_COMPLETE skb->csum; the hop limit and a port under no UDP
 * checksum do (tp_tc_complete_follows).
 * Returns TP_FORWARD, a punt reason (phase 1), or TP_R_rewrite_failed (phase 2). */
static __always_inline int tp_tc_apply(struct __sk_buff* skb, __u8 rawip_in, struct tp_pkt* p,
                                       const struct tp_decision* d) {
  const struct tp_nexthop* nh = d->nh;
  const __u8 rawip_out = d->egress->rawip;
  const __u16 vlan = rawip_out ? 0 : nh->vlan;
  /* The flow's plan, read once: a removed flow's element may be reused by another flow. */
  const __u32 nat_addr = d->a->nat_addr;
  const __u16 nat_port = d->a->nat_port;
  const __u16 csum_l3 = d->a->csum_l3;
  const __u32 csum_l4_addr = tp_raw_delta(d->a->csum_l4_addr);
  const __u32 csum_l4_port = tp_raw_delta(d->a->csum_l4_port);
  const __u8 rewrite = d->a->rewrite;
  const int nat = p->version == 4 && rewrite != TP_RW_ROUTE;
  const int snat = rewrite == TP_RW_SNAT;
  /* Bounded for the verifier; the parser saw them inside its 128 bytes. */
  __u32 l3 = p->l3_off & 0xff, l4 = p->l4_off & 0xff;

  /* Phase 1. TCP: ports and checksum lie in the first 20 bytes; UDP, ICMP, IPv6: in 8. The
   * program's start pulled up to 128 bytes, which holds them unless the frame is shorter. */
  const __u32 reach = l4 + (p->proto == IPPROTO_TCP ? 20 : 8);
  if ((__u32)(skb->data_end - skb->data) < reach &&
      bpf_skb_pull_data(skb, reach < skb->len ? reach : skb->len))
    return TP_R_no_headroom;
  __u8* data = (void*)(long)skb->data;
  void* data_end = (void*)(long)skb->data_end;
  if ((void*)(data + l4 + 8) > data_end || (void*)(data + l3 + 20) > data_end ||
      (p->proto == IPPROTO_TCP && (void*)(data + l4 + 20) > data_end))
    return TP_R_malformed;
  const __u16 udp_check = p->proto == IPPROTO_UDP ? *(__u16*)(data + l4 + 6) : 0;
  if (rawip_in && !rawip_out) {
    if (bpf_skb_change_head(skb, TP_ETH_HLEN, 0)) return TP_R_no_headroom;
    l3 = (l3 + TP_ETH_HLEN) & 0xff;
    l4 = (l4 + TP_ETH_HLEN) & 0xff;
    __u16 proto = p->version == 4 ? bpf_htons(ETH_P_IP) : bpf_htons(ETH_P_IPV6);
    if (bpf_skb_store_bytes(skb, 12, &proto, 2, 0)) return TP_R_rewrite_failed;
  }

  /* Phase 2: the helpers. */
  if (p->tag && vlan) {
    __u16 tci = bpf_htons((p->tci & 0xf000) | vlan);
    if (p->tag == TP_TAG_INBAND) {
      /* skb->csum (COMPLETE) starts at the network header, which an in-frame tag follows. */
      if (bpf_skb_store_bytes(skb, TP_ETH_HLEN, &tci, 2, BPF_F_RECOMPUTE_CSUM))
        return TP_R_rewrite_failed;
    } else {
      /* A tag in skb->vlan_tci is replaced by popping it and pushing the new one: both only
       * touch the skb's metadata. */
      __u16 vproto = skb->vlan_proto;
      if (bpf_skb_vlan_pop(skb) || bpf_skb_vlan_push(skb, vproto, bpf_ntohs(tci)))
        return TP_R_rewrite_failed;
    }
  } else if (p->tag) {
    if (bpf_skb_vlan_pop(skb)) return TP_R_rewrite_failed;
    if (p->tag == TP_TAG_INBAND) {
      l3 = (l3 - TP_VLAN_HLEN) & 0xff;
      l4 = (l4 - TP_VLAN_HLEN) & 0xff;
    }
  } else if (vlan) {
    /* Into skb->vlan_tci: the egress device or dev_queue_xmit inserts it. */
    if (bpf_skb_vlan_push(skb, bpf_htons(ETH_P_8021Q), vlan)) return TP_R_rewrite_failed;
  }
  /* The tag now in skb->vlan_tci, also in tc's scratch space (qdisc_skb_cb.data, which nothing
   * after tc reads): BPF_PROG_TEST_RUN returns cb[] but not vlan_tci, and the golden tests must
   * see the tag. */
  if (vlan && p->tag != TP_TAG_INBAND) skb->cb[0] = TP_CB_VLAN_PUSHED | vlan_tci_of(p, vlan);

  long err = 0;
  if (nat) {
    if (p->proto == IPPROTO_TCP) {
      err |= bpf_l4_csum_replace(skb, l4 + 16, 0, csum_l4_addr, BPF_F_PSEUDO_HDR);
      err |= bpf_l4_csum_replace(skb, l4 + 16, 0, csum_l4_port, 0);
    } else if (p->proto == IPPROTO_UDP && udp_check) {
      err |= bpf_l4_csum_replace(skb, l4 + 6, 0, csum_l4_addr,
                                 BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0);
      err |= bpf_l4_csum_replace(skb, l4 + 6, 0, csum_l4_port, BPF_F_MARK_MANGLED_0);
    } else if (p->proto == IPPROTO_ICMP) {
      err |= bpf_l4_csum_replace(skb, l4 + 2, 0, csum_l4_port, 0);
    }
  }
  if (err) return TP_R_rewrite_failed;

  /* Phase 2: the direct writes, inside what phase 1 checked (the checks again for the verifier:
   * the helpers may have moved the data). */
  data = (void*)(long)skb->data;
  data_end = (void*)(long)skb->data_end;
  if ((void*)(data + l4 + 8) > data_end || (void*)(data + l3 + 20) > data_end ||
      (void*)(data + TP_ETH_HLEN) > data_end)
    return TP_R_rewrite_failed;
  __u8* ip = data + l3;
  if (p->version == 4) {
    ip[8] -= 1;
    tp_csum_apply((__u16*)(ip + 10), csum_l3);
    if (nat) {
      *(__u32*)(ip + (snat ? 12 : 16)) = nat_addr;
      if (p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP || p->proto == IPPROTO_ICMP) {
        __u16* port = (__u16*)(data + l4 + (p->proto == IPPROTO_ICMP ? 4 : snat ? 0 : 2));
        const __u16 was = *port;
        *port = nat_port;
        /* No UDP checksum (RFC 768) stays none; nothing compensates the new port. */
        if (p->proto == IPPROTO_UDP && !udp_check) tp_tc_complete_follows(skb, was, nat_port);
      }
    }
  } else {
    /* No IPv6 checksum covers the hop limit, but skb->csum (COMPLETE) does. */
    const __u16 was = *(__u16*)(ip + 6); /* next header, hop limit */
    ip[7] -= 1;
    tp_tc_complete_follows(skb, was, *(__u16*)(ip + 6));
  }
  /* Leaving by a device without a link layer, the kernel strips the MAC header on redirect. */
  if (!rawip_out) {
    __builtin_memcpy(data, nh->dst_mac, 6);
    __builtin_memcpy(data + 6, nh->src_mac, 6);
  }
  return TP_FORWARD;
}

static __always_inline int tp_tc(struct __sk_buff* skb, __u8 rawip) {
  struct tp_pkt p;
  __builtin_memset(&p, 0, sizeof(p));
  struct tp_decision d;
  __builtin_memset(&d, 0, sizeof(d));
  __u32 ifindex = skb->ifindex;
  __u32* port_idx = bpf_map_lookup_elem(&tp_ifindex_port, &ifindex);
  if (!port_idx) {
    tp_count_reason(TP_R_port_disabled);
    return TC_ACT_PIPE;
  }
  __u32 in_port = *port_idx % TP_MAX_PORTS;
  struct tp_state st = {0};
  tp_read_config(&st);
  struct tp_port* port = tp_port_of(st.bank, in_port);
  if (!port) return tp_tc_punt(in_port, &p, &d, TP_R_port_disabled);

  /* Only direct reads below, which never pull by themselves: on a non-linear skb the headers may
   * not be in the linear part at all (Android commit 8e69ec111f). */
  __u32 want = skb->len < TP_TC_PULL ? skb->len : TP_TC_PULL;
  if ((__u32)(skb->data_end - skb->data) < want) bpf_skb_pull_data(skb, want);

  struct tp_in in = {
      .data = (void*)(long)skb->data,
      .data_end = (void*)(long)skb->data_end,
      .len = skb->len,
      .rawip = rawip,
      .hw_tag = skb->vlan_present ? 1 : 0,
      .hw_tci = (__u16)skb->vlan_tci,
      .gso_size = (__u16)skb->gso_size,
  };
  int r = tp_decide(&in, &st, in_port, port, &p, &d);
  if (r != TP_FORWARD) return tp_tc_punt(in_port, &p, &d, r);
  if (!d.egress->ifindex) return tp_tc_punt(in_port, &p, &d, TP_R_no_nexthop);
  /* The verdict, before anything changes: bpf_redirect only records the target (the kernel
   * redirects once the program returned) and refuses nothing but unknown flags. */
  const long verdict = bpf_redirect(d.egress->ifindex, 0);
  if (verdict != TC_ACT_REDIRECT) return tp_tc_punt(in_port, &p, &d, TP_R_no_nexthop);
  r = tp_tc_apply(skb, rawip, &p, &d);
  if (r == TP_R_rewrite_failed) return tp_tc_drop(in_port, &p, &d);
  if (r != TP_FORWARD) return tp_tc_punt(in_port, &p, &d, r);
  tp_account(in_port, &p, TP_FORWARD, &d, !d.egress->tc_egress);
  return verdict;
}

SEC("tc")
int tp_tc_ether(struct __sk_buff* skb) { return tp_tc(skb, 0); }

/* Upstreams without an Ethernet header (rmnet, tun): a link-layer header is added when the
 * packet leaves by an Ethernet device. */
SEC("tc")
int tp_tc_rawip(struct __sk_buff* skb) { return tp_tc(skb, 1); }

/* A 16-bit word of the frame, as stored: read directly where the linear part holds it (nearly
 * always), by the helper where not. Non-zero when the frame is shorter. */
static __always_inline int tp_tc_peek16(struct __sk_buff* skb, __u32 off, __u16* out) {
  const __u8* data = (void*)(long)skb->data;
  const void* data_end = (void*)(long)skb->data_end;
  off &= 0x3f; /* at most 22: bounded for the verifier */
  if ((void*)(data + off + 2) <= data_end) {
    *out = *(const __u16*)(data + off);
    return 0;
  }
  return bpf_skb_load_bytes(skb, off, out, 2) ? -1 : 0;
}

/* tc egress: counts, and charges to data limits, what leaves a port by the kernel's path (what
 * the kernel forwards after a punt, what it sends itself) and what tc redirected to it. Every IP
 * packet is counted and charged with its IP length; anything else, whatever its shape, is only let
 * through. It never judges: TC_ACT_PIPE, so later filters still run. An XDP redirect never passes
 * here (the XDP program counts and charges the egress port itself). */
static __always_inline int tp_tc_egress_charge(struct __sk_buff* skb, __u8 rawip) {
  __u32 ifindex = skb->ifindex;
  __u32* port_idx = bpf_map_lookup_elem(&tp_ifindex_port, &ifindex);
  if (!port_idx) return TC_ACT_PIPE;
  const __u32 port = *port_idx % TP_MAX_PORTS;
  __u32 l3 = 0;
  __u8 version = 0;
  __u16 w;
  if (rawip) {
    if (tp_tc_peek16(skb, 0, &w)) return TC_ACT_PIPE;
    version = bpf_ntohs(w) >> 12;
  } else {
    /* A tag in skb->vlan_tci is not in the frame; one in the frame is stepped over. */
    if (tp_tc_peek16(skb, 12, &w)) return TC_ACT_PIPE;
    l3 = TP_ETH_HLEN;
    if (tp_is_vlan(w)) {
      if (tp_tc_peek16(skb, TP_ETH_HLEN + 2, &w)) return TC_ACT_PIPE;
      l3 += TP_VLAN_HLEN;
    }
    version = w == bpf_htons(ETH_P_IP) ? 4 : w == bpf_htons(ETH_P_IPV6) ? 6 : 0;
  }
  __u64 bytes;
  if (version == 4) {
    if (tp_tc_peek16(skb, l3 + 2, &w)) return TC_ACT_PIPE;
    bytes = bpf_ntohs(w);
  } else if (version == 6) {
    if (tp_tc_peek16(skb, l3 + 4, &w)) return TC_ACT_PIPE;
    bytes = bpf_ntohs(w) ? bpf_ntohs(w) + 40u : 0;
  } else {
    return TC_ACT_PIPE;
  }
  /* A length field of 0: a GSO packet above 64 KiB (BIG TCP), whose length is the skb's. Never
   * more than the skb holds. */
  const __u64 held = skb->len > l3 ? skb->len - l3 : 0;
  if (!bytes || bytes > held) bytes = held;
  struct tp_port_totals* t = tp_totals(port);
  if (t) {
    t->egress_packets += 1;
    t->egress_ip_bytes += bytes;
  }
  tp_charge(tp_limit_of(port), bytes);
  return TC_ACT_PIPE;
}

SEC("tc")
int tp_tc_egress(struct __sk_buff* skb) { return tp_tc_egress_charge(skb, 0); }

SEC("tc")
int tp_tc_egress_rawip(struct __sk_buff* skb) { return tp_tc_egress_charge(skb, 1); }

char _license[] SEC("license") = "GPL";
