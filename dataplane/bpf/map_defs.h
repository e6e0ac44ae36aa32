/* The maps both programs share. Each object (tc, XDP) defines them by these names; the loader
 * creates them once, with the tc object, and hands the same file descriptors to the XDP objects
 * (bpf_map__reuse_fd), so one control-plane write is seen by every hook. Flow and rule maps are
 * plain hash maps sized by the loader before load: a full map refuses the insert and the flow
 * stays with the kernel, where an LRU map would silently evict one half of a live NAT pair. */
#ifndef TP_BPF_MAP_DEFS_H
#define TP_BPF_MAP_DEFS_H

#include <linux/bpf.h>

#include <bpf/bpf_helpers.h>

#include "maps.h"

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 1024);
  __type(key, struct tp_key4);
  __type(value, struct tp_action);
} tp_flows4 SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 1024);
  __type(key, struct tp_key6);
  __type(value, struct tp_action);
} tp_flows6 SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 256);
  __type(key, struct tp_rule_key6);
  __type(value, struct tp_action);
} tp_rules6 SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, TP_BANKS* TP_MAX_PORTS);
  __type(key, __u32);
  __type(value, struct tp_port);
} tp_ports SEC(".maps");

/* ifindex -> port index: the program only knows the device a packet arrived on. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, TP_MAX_PORTS);
  __type(key, __u32);
  __type(value, __u32);
} tp_ifindex_port SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, TP_BANKS* TP_MAX_NEXTHOPS);
  __type(key, __u32);
  __type(value, struct tp_nexthop);
} tp_nexthops SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, TP_BANKS);
  __type(key, __u32);
  __type(value, struct tp_kernel_only6);
} tp_kernel_only6 SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __uint(map_flags, BPF_F_MMAPABLE);
  __type(key, __u32);
  __type(value, struct tp_config);
} tp_config SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, TP_MAX_PORTS);
  __type(key, __u32);
  __type(value, struct tp_port_totals);
} tp_port_totals SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, TP_R_COUNT);
  __type(key, __u32);
  __type(value, __u64);
} tp_reasons SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, TP_MAX_PORTS);
  __type(key, __u32);
  __type(value, struct tp_limit);
} tp_limits SEC(".maps");

/* XDP only: port index -> egress device, for the ports whose device takes XDP frames. */
struct {
  __uint(type, BPF_MAP_TYPE_DEVMAP);
  __uint(max_entries, TP_MAX_PORTS);
  __type(key, __u32);
  __type(value, __u32);
} tp_tx_ports SEC(".maps");

#endif
