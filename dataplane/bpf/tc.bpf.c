/* tc ingress (clsact, direct-action): the forwarding core applied through the skb helpers, which
 * keep CHECKSUM_PARTIAL and CHECKSUM_COMPLETE skbs right, then bpf_redirect to the egress device.
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

static __always_inline int tp_tc_punt(__u32 in_port, const struct tp_pkt* p, int r) {
  tp_account(in_port, p, r, 0);
  return TC_ACT_PIPE;
}

/* The rewrite, after every check passed. The first call that could fail for want of memory
 * (making the head writable, adding the link-layer header, moving a tag) comes before any byte
 * changes, so a packet that cannot be rewritten reaches the kernel as it arrived. */
static __always_inline int tp_tc_apply(struct __sk_buff* skb, __u8 rawip_in, struct tp_pkt* p,
                                       const struct tp_decision* d) {
  const struct tp_action* a = d->a;
  const struct tp_nexthop* nh = d->nh;
  const __u8 rawip_out = d->egress->rawip;
  __u32 l3 = p->l3_off, l4 = p->l4_off;
  if (bpf_skb_pull_data(skb, p->l4_off + 8 < skb->len ? p->l4_off + 8 : skb->len))
    return TP_R_no_headroom;
  if (rawip_in && !rawip_out) {
    if (bpf_skb_change_head(skb, TP_ETH_HLEN, 0)) return TP_R_no_headroom;
    __u16 proto = p->version == 4 ? bpf_htons(ETH_P_IP) : bpf_htons(ETH_P_IPV6);
    bpf_skb_store_bytes(skb, 12, &proto, 2, 0);
    l3 += TP_ETH_HLEN;
    l4 += TP_ETH_HLEN;
  }
  const __u16 vlan = rawip_out ? 0 : nh->vlan;
  if (p->tag && vlan) {
    __u16 tci = bpf_htons((p->tci & 0xf000) | vlan);
    if (p->tag == TP_TAG_INBAND) {
      /* skb->csum (COMPLETE) starts at the network header, which an in-frame tag follows. */
      bpf_skb_store_bytes(skb, TP_ETH_HLEN, &tci, 2, BPF_F_RECOMPUTE_CSUM);
    } else {
      /* A tag in skb->vlan_tci is replaced by popping it and pushing the new one: both only
       * touch the skb's metadata. */
      __u16 vproto = skb->vlan_proto;
      bpf_skb_vlan_pop(skb);
      bpf_skb_vlan_push(skb, vproto, bpf_ntohs(tci));
    }
  } else if (p->tag) {
    if (bpf_skb_vlan_pop(skb)) return TP_R_no_headroom;
    if (p->tag == TP_TAG_INBAND) {
      l3 -= TP_VLAN_HLEN;
      l4 -= TP_VLAN_HLEN;
    }
  } else if (vlan) {
    /* Into skb->vlan_tci: the egress device or dev_queue_xmit inserts it. */
    if (bpf_skb_vlan_push(skb, bpf_htons(ETH_P_8021Q), vlan)) return TP_R_no_headroom;
  }
  /* The tag now in skb->vlan_tci, also in tc's scratch space (qdisc_skb_cb.data, which nothing
   * after tc reads): BPF_PROG_TEST_RUN returns cb[] but not vlan_tci, and the golden tests must
   * see the tag. */
  if (vlan && p->tag != TP_TAG_INBAND) skb->cb[0] = TP_CB_VLAN_PUSHED | vlan_tci_of(p, vlan);

  if (p->version == 4) {
    __u8 ttl;
    if (bpf_skb_load_bytes(skb, l3 + 8, &ttl, 1)) return TP_FORWARD;
    ttl -= 1;
    /* The header checksum compensates the TTL and address bytes, so skb->csum (COMPLETE) holds:
     * plain stores, and the delta into the header checksum. */
    bpf_skb_store_bytes(skb, l3 + 8, &ttl, 1, 0);
    bpf_l3_csum_replace(skb, l3 + 10, 0, tp_raw_delta(a->csum_l3), 0);
    if (a->rewrite != TP_RW_ROUTE) {
      const int snat = a->rewrite == TP_RW_SNAT;
      bpf_skb_store_bytes(skb, l3 + (snat ? 12 : 16), &a->nat_addr, 4, 0);
      if (p->proto == IPPROTO_TCP) {
        bpf_skb_store_bytes(skb, l4 + (snat ? 0 : 2), &a->nat_port, 2, 0);
        bpf_l4_csum_replace(skb, l4 + 16, 0, tp_raw_delta(a->csum_l4_addr), BPF_F_PSEUDO_HDR);
        bpf_l4_csum_replace(skb, l4 + 16, 0, tp_raw_delta(a->csum_l4_port), 0);
      } else if (p->proto == IPPROTO_UDP) {
        __u16 check = 0;
        bpf_skb_load_bytes(skb, l4 + 6, &check, 2);
        if (check) {
          bpf_skb_store_bytes(skb, l4 + (snat ? 0 : 2), &a->nat_port, 2, 0);
          bpf_l4_csum_replace(skb, l4 + 6, 0, tp_raw_delta(a->csum_l4_addr),
                              BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0);
          bpf_l4_csum_replace(skb, l4 + 6, 0, tp_raw_delta(a->csum_l4_port), BPF_F_MARK_MANGLED_0);
        } else {
          /* No checksum (RFC 768) stays none; nothing compensates the new port, so skb->csum
           * (COMPLETE) is moved by the store itself. */
          bpf_skb_store_bytes(skb, l4 + (snat ? 0 : 2), &a->nat_port, 2, BPF_F_RECOMPUTE_CSUM);
        }
      } else if (p->proto == IPPROTO_ICMP) {
        bpf_skb_store_bytes(skb, l4 + 4, &a->nat_port, 2, 0);
        bpf_l4_csum_replace(skb, l4 + 2, 0, tp_raw_delta(a->csum_l4_port), 0);
      }
    }
  } else {
    /* No IPv6 checksum covers the hop limit, but skb->csum (COMPLETE) does: the aligned word
     * {next header, hop limit} is stored with BPF_F_RECOMPUTE_CSUM. */
    __u8 w[2];
    if (bpf_skb_load_bytes(skb, l3 + 6, w, 2)) return TP_FORWARD;
    w[1] -= 1;
    bpf_skb_store_bytes(skb, l3 + 6, w, 2, BPF_F_RECOMPUTE_CSUM);
  }
  /* Leaving by a device without a link layer, the kernel strips the MAC header on redirect. */
  if (!rawip_out) {
    bpf_skb_store_bytes(skb, 0, nh->dst_mac, 6, 0);
    bpf_skb_store_bytes(skb, 6, nh->src_mac, 6, 0);
  }
  return TP_FORWARD;
}

static __always_inline int tp_tc(struct __sk_buff* skb, __u8 rawip) {
  struct tp_pkt p;
  __builtin_memset(&p, 0, sizeof(p));
  __u32 ifindex = skb->ifindex;
  __u32* port_idx = bpf_map_lookup_elem(&tp_ifindex_port, &ifindex);
  if (!port_idx) {
    tp_count_reason(TP_R_port_disabled);
    return TC_ACT_PIPE;
  }
  __u32 in_port = *port_idx % TP_MAX_PORTS;
  const __u32 bank = tp_bank();
  struct tp_port* port = tp_port_of(bank, in_port);
  if (!port) return tp_tc_punt(in_port, &p, TP_R_port_disabled);

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
  struct tp_decision d;
  __builtin_memset(&d, 0, sizeof(d));
  int r = tp_decide(&in, bank, in_port, port, &p, &d);
  if (r != TP_FORWARD) return tp_tc_punt(in_port, &p, r);
  if (!d.egress->ifindex) return tp_tc_punt(in_port, &p, TP_R_no_nexthop);
  __u32 oif = d.egress->ifindex;
  r = tp_tc_apply(skb, rawip, &p, &d);
  if (r != TP_FORWARD) return tp_tc_punt(in_port, &p, r);
  tp_account(in_port, &p, TP_FORWARD, &d);
  return bpf_redirect(oif, 0);
}

SEC("tc")
int tp_tc_ether(struct __sk_buff* skb) { return tp_tc(skb, 0); }

/* Upstreams without an Ethernet header (rmnet, tun): a link-layer header is added when the
 * packet leaves by an Ethernet device. */
SEC("tc")
int tp_tc_rawip(struct __sk_buff* skb) { return tp_tc(skb, 1); }

char _license[] SEC("license") = "GPL";
