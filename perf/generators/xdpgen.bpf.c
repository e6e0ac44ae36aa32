// xdpgen's sender: run by BPF_PROG_TEST_RUN in live-frames mode, once per frame, it gives the
// frame its flow's headers and redirects it out of the generator's veth, so the box's veth
// receives XDP frames as a NIC driver's XDP hook would, not skbs as from a socket.
//
// Live frames recycle their pages with whatever the last frame in them became (the box rewrites
// MACs, addresses, TTL and checksums in place when it forwards by XDP), so every frame gets the
// whole header region back from the template, not only its source port.
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

#define HEADER_BYTES 64  // Ethernet + IPv6 + UDP (62), rounded; IPv4 copies the first 48

struct xdpgen_config {
  __u32 ifindex;     // where frames go (the generator's veth toward the box)
  __u32 flows;       // source ports kClientPortBase .. + flows - 1, in turn
  __u16 sport_base;  // the template's source port
  __u16 udp_csum;    // the template's UDP checksum, network order (0: none, IPv4)
  __u32 ipv6;
  __u64 interval_ns;  // one frame per interval (0: every frame, as fast as the CPU goes)
  __u8 header[HEADER_BYTES];
};

// What the program keeps between frames (one CPU runs it, so a plain array is enough).
struct xdpgen_state {
  __u32 next_flow;
  __u32 pad;
  __u64 next_ns;   // when the next frame is due (paced)
  __u64 sent;      // frames redirected
  __u64 first_ns;  // paced: the first and the last frame this call sent (xdpgen resets first_ns
  __u64 last_ns;   // between calls), so that the rate achieved can be told from the rate asked
};

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct xdpgen_config);
} config SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct xdpgen_state);
} state SEC(".maps");

// A paced sender that fell behind (preempted) starts again from now rather than catching up in a
// burst.
#define MAX_BEHIND_NS 20000

static __u16 fold(__u32 sum) {
  sum = (sum & 0xffff) + (sum >> 16);
  return (__u16)((sum & 0xffff) + (sum >> 16));
}

SEC("xdp")
int xdpgen(struct xdp_md *ctx) {
  __u32 zero = 0;
  struct xdpgen_config *c = bpf_map_lookup_elem(&config, &zero);
  struct xdpgen_state *st = bpf_map_lookup_elem(&state, &zero);
  if (!c || !st || !c->flows) return XDP_ABORTED;
  if (c->interval_ns) {  // paced: frames that are not due yet go back to the pool unsent
    __u64 now = bpf_ktime_get_ns();
    if (now < st->next_ns) return XDP_DROP;
    st->next_ns = now - st->next_ns > MAX_BEHIND_NS ? now + c->interval_ns : st->next_ns + c->interval_ns;
    if (!st->first_ns) st->first_ns = now;
    st->last_ns = now;
  }
  __u8 *data = (__u8 *)(long)ctx->data;
  __u8 *end = (__u8 *)(long)ctx->data_end;

  __u32 flow = st->next_flow;
  st->next_flow = flow + 1 >= c->flows ? 0 : flow + 1;
  __u16 sport = (__u16)(c->sport_base + flow);
  __u8 *udp;
  if (c->ipv6) {
    if (data + 64 > end) return XDP_ABORTED;
    __builtin_memcpy(data, c->header, 64);
    udp = data + 14 + 40;
  } else {
    if (data + 48 > end) return XDP_ABORTED;
    __builtin_memcpy(data, c->header, 48);
    udp = data + 14 + 20;
  }
  udp[0] = sport >> 8;
  udp[1] = sport & 0xff;
  if (c->udp_csum) {  // RFC 1624: HC' = ~(~HC + ~m + m'), in network order
    __u16 old = (__u16)((c->sport_base >> 8) | (c->sport_base << 8));
    __u16 new = (__u16)((sport >> 8) | (sport << 8));
    __u16 sum = (__u16)~fold((__u32)(__u16)~c->udp_csum + (__u16)~old + new);
    *(__u16 *)(udp + 6) = sum ? sum : 0xffff;
  }
  st->sent++;
  return (int)bpf_redirect(c->ifindex, 0);
}

char _license[] SEC("license") = "GPL";
