/* The exception reasons as one C list, shared by the C++ engines and the BPF programs, so the
 * numbering and the names cannot drift apart between them. */
#ifndef TP_REASONS_H
#define TP_REASONS_H

/* Drops come last. */
#define TP_REASONS(X)                                                                            \
  /* Punts. */                                                                                   \
  X(unknown_flow)    /* no fast-path entry: the kernel routes/NATs it, conntrack may offload */  \
  X(tcp_control)     /* SYN/FIN/RST: conntrack must see every TCP state change */                \
  X(fragment)        /* IPv4 MF/offset or IPv6 fragment header: the kernel reassembles */        \
  X(ttl_expired)     /* TTL/hop limit <= 1: the kernel sends Time Exceeded */                    \
  X(ipv4_options)    /* IHL > 5 */                                                               \
  X(ipv6_ext_header) /* any extension header other than a fragment header */                     \
  X(too_big)         /* above the egress MTU: the kernel fragments or sends PTB/Frag Needed */   \
  X(icmp_error)      /* embedded headers need translating, which the kernel does */              \
  X(icmp_other)      /* ICMP that is neither echo nor an error */                                \
  X(arp)                                                                                         \
  X(ndp)             /* ICMPv6 133..137 */                                                       \
  X(not_ip)          /* any other ethertype */                                                   \
  X(l2_multicast)    /* broadcast or multicast destination MAC */                                \
  X(l2_other_host)   /* unicast frame for another MAC (promiscuous backends see these) */        \
  X(not_unicast_ip)  /* IPv4 broadcast/multicast destination */                                  \
  X(ipv6_non_global) /* link-local, multicast, loopback, unspecified or v4-mapped address */     \
  X(local)           /* to the box itself, or an IPv6 rule's to/from a local prefix: no flow */  \
  X(unsupported_l4)  /* any protocol other than TCP, UDP, ICMP, ICMPv6 */                        \
  X(vlan_stacked)    /* more than one 802.1Q/802.1ad tag */                                      \
  X(malformed)       /* truncated header, lying length, bad IPv4 header checksum, IHL < 5 */     \
  X(no_nexthop)      /* the flow's next hop was withdrawn or its egress port is down */          \
  X(xdp_egress)      /* XDP: the egress device takes no XDP redirects; the kernel forwards it */ \
  X(no_headroom)     /* a VLAN tag must be pushed and the buffer has no room in front */         \
  X(port_disabled)   /* the ingress port is not (yet) part of the published topology */          \
  X(data_limit)      /* the upstream's data limit is reached: the kernel's policy applies */     \
  X(stale_heartbeat) /* BPF: the daemon's heartbeat is older than its bound: the kernel's */     \
  /* Drops: not even a frame the kernel could account for. */                                    \
  X(runt)           /* shorter than an Ethernet header */                                        \
  X(rewrite_failed) /* BPF: a rewrite step failed after the frame was changed (cannot happen) */

#endif
