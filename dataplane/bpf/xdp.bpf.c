/* XDP: the forwarding core applied to the bytes, with open-coded RFC 1624 updates (there is no
 * skb, hence no checksum offload state to keep), then bpf_redirect_map through tp_tx_ports, which
 * holds only the ports whose device takes XDP frames. A punt is XDP_PASS; nothing is dropped.
 * Built for libxdp's dispatcher: a global function of the plain XDP signature, with BTF. */
#include <linux/bpf.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <xdp/xdp_helpers.h>

#include "forward.h"

struct {
  __uint(priority, 20);
  __uint(XDP_PASS, 1);
} XDP_RUN_CONFIG(tp_xdp);

/* A frame changed and then found unfit to finish (cannot happen: see the checks before the first
 * write) is dropped and counted, never passed on half-rewritten. */
static __always_inline int tp_xdp_drop(__u32 in_port, const struct tp_pkt* p,
                                       const struct tp_decision* d) {
  tp_account(in_port, p, TP_R_rewrite_failed, d, 0);
  return XDP_DROP;
}

static __always_inline int tp_xdp_punt(__u32 in_port, const struct tp_pkt* p,
                                       const struct tp_decision* d, int r) {
  tp_account(in_port, p, r, d, 0);
  return XDP_PASS;
}

SEC("xdp")
int tp_xdp(struct xdp_md* ctx) {
  struct tp_pkt p;
  __builtin_memset(&p, 0, sizeof(p));
  struct tp_decision d;
  __builtin_memset(&d, 0, sizeof(d));
  __u32 ifindex = ctx->ingress_ifindex;
  __u32* port_idx = bpf_map_lookup_elem(&tp_ifindex_port, &ifindex);
  if (!port_idx) {
    tp_count_reason(TP_R_port_disabled);
    return XDP_PASS;
  }
  __u32 in_port = *port_idx % TP_MAX_PORTS;
  struct tp_state st = {0};
  tp_read_config(&st);
  struct tp_port* port = tp_port_of(st.bank, in_port);
  if (!port) return tp_xdp_punt(in_port, &p, &d, TP_R_port_disabled);

  struct tp_in in = {
      .data = (void*)(long)ctx->data,
      .data_end = (void*)(long)ctx->data_end,
  };
  in.len = (__u32)bpf_xdp_get_buff_len(ctx);
  int r = tp_decide(&in, &st, in_port, port, &p, &d);
  if (r != TP_FORWARD) return tp_xdp_punt(in_port, &p, &d, r);
  /* The verdict, before anything changes: bpf_redirect_map only records the target and says
   * XDP_REDIRECT when the egress device is in tp_tx_ports, else the fallback given (XDP_PASS).
   * A device that takes no XDP frames would drop them after the redirect: the kernel forwards
   * such packets instead. */
  if (d.egress->rawip) return tp_xdp_punt(in_port, &p, &d, TP_R_xdp_egress);
  const long verdict = bpf_redirect_map(&tp_tx_ports, d.out_port, XDP_PASS);
  if (verdict != XDP_REDIRECT) return tp_xdp_punt(in_port, &p, &d, TP_R_xdp_egress);

  const struct tp_action* a = d.a;
  const struct tp_nexthop* nh = d.nh;
  __s32 shift = 0;
  if (p.tag && !nh->vlan) shift = TP_VLAN_HLEN;
  if (!p.tag && nh->vlan) shift = -TP_VLAN_HLEN;
  /* Moving the frame start is the only step that can fail, and it fails without a change. */
  if (shift && bpf_xdp_adjust_head(ctx, shift))
    return tp_xdp_punt(in_port, &p, &d, TP_R_no_headroom);
  __u8* data = (void*)(long)ctx->data;
  void* data_end = (void*)(long)ctx->data_end;
  __u32 l3 = (p.l3_off - shift) & 0xff, l4 = (p.l4_off - shift) & 0xff;
  /* Every byte written below, checked before the first write (the verifier wants the checks
   * anyway). They cannot fail: parse() saw these bytes, and moving the start only gave or took
   * the 4 bytes of a tag in front. If they did after the start moved, the frame is no longer as
   * it arrived and is dropped (counted), never passed on half-rewritten. */
  if ((void*)(data + l3 + 20) > data_end || (void*)(data + l4 + 8) > data_end ||
      (void*)(data + TP_ETH_HLEN + TP_VLAN_HLEN) > data_end ||
      (p.proto == IPPROTO_TCP && (void*)(data + l4 + 20) > data_end)) {
    return shift ? tp_xdp_drop(in_port, &p, &d) : tp_xdp_punt(in_port, &p, &d, TP_R_malformed);
  }
  /* Both MACs are written last, so stripping or pushing a tag only moved the frame start: the
   * ethertype after the MACs or the tag is already in place (eth_output.hpp). */
  if (nh->vlan) {
    if (!p.tag) *(__u16*)(data + 12) = bpf_htons(ETH_P_8021Q);
    *(__u16*)(data + TP_ETH_HLEN) = bpf_htons((p.tci & 0xf000) | nh->vlan);
  }
  __u8* ip = data + l3;
  if (p.version == 4) {
    ip[8] -= 1;
    tp_csum_apply((__u16*)(ip + 10), a->csum_l3);
    if (a->rewrite != TP_RW_ROUTE) {
      const int snat = a->rewrite == TP_RW_SNAT;
      *(__u32*)(ip + (snat ? 12 : 16)) = a->nat_addr;
      __u8* l4p = data + l4;
      __u32 l4_delta = (__u32)a->csum_l4_addr + a->csum_l4_port;
      l4_delta = (l4_delta & 0xffff) + (l4_delta >> 16);
      if (p.proto == IPPROTO_TCP) {
        if ((void*)(l4p + 20) > data_end) return tp_xdp_drop(in_port, &p, &d); /* checked above */
        *(__u16*)(l4p + (snat ? 0 : 2)) = a->nat_port;
        tp_csum_apply((__u16*)(l4p + 16), (__u16)l4_delta);
      } else if (p.proto == IPPROTO_UDP) {
        *(__u16*)(l4p + (snat ? 0 : 2)) = a->nat_port;
        __u16* check = (__u16*)(l4p + 6);
        /* RFC 768: zero means "no checksum" and stays zero; a computed zero is sent as ones. */
        if (*check) {
          tp_csum_apply(check, (__u16)l4_delta);
          if (!*check) *check = 0xffff;
        }
      } else if (p.proto == IPPROTO_ICMP) {
        *(__u16*)(l4p + 4) = a->nat_port;
        tp_csum_apply((__u16*)(l4p + 2), a->csum_l4_port);
      }
    }
  } else {
    ip[7] -= 1;
  }
  __builtin_memcpy(data, nh->dst_mac, 6);
  __builtin_memcpy(data + 6, nh->src_mac, 6);
  /* An XDP redirect passes no tc egress program: the egress port is charged here. */
  tp_account(in_port, &p, TP_FORWARD, &d, 1);
  return verdict;
}

char _license[] SEC("license") = "GPL";
