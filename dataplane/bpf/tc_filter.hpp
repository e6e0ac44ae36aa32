// tetherpath's tc filter as libbpf names it: the clsact hook of a device's ingress or egress, and
// our filter there (kTcHandle at kTcPriority), for attach (with a program: replace in place),
// query and detach. Ingress (bpf_fast_path.cpp) and the egress counter (tc_egress.cpp) share it.
#pragma once

#include <bpf/libbpf.h>

#include "bpf_fast_path.hpp"

namespace tp {

inline bpf_tc_hook tc_hook(int ifindex, bpf_tc_attach_point point) {
  bpf_tc_hook h{};
  h.sz = sizeof(h);
  h.ifindex = ifindex;
  h.attach_point = point;
  return h;
}

// prog_fd > 0: attach it, replacing ours if it is there; otherwise the filter to query or detach.
inline bpf_tc_opts tc_filter(int prog_fd = 0) {
  bpf_tc_opts o{};
  o.sz = sizeof(o);
  o.handle = BpfFastPath::kTcHandle;
  o.priority = BpfFastPath::kTcPriority;
  o.prog_fd = prog_fd;
  o.flags = prog_fd > 0 ? BPF_TC_F_REPLACE : 0;
  return o;
}

}  // namespace tp
