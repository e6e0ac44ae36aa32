// The tc egress program of the data limits (tc.bpf.c, tp_tc_egress): attached to a port's clsact
// egress, at the ingress filter's priority and handle. A port's flag tp_port.tc_egress tells the
// ingress programs that it charges what tc redirects out of the port; it is published after the
// filter is in place and withdrawn before the filter goes, so a packet in between is charged twice
// rather than not at all.
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>

#include "bpf_fast_path.hpp"
#include "tc_filter.hpp"

namespace tp {
int BpfFastPath::egress_prog_fd(bool rawip) const {
  return bpf_program__fd(
      bpf_object__find_program_by_name(tc_obj_, rawip ? "tp_tc_egress_rawip" : "tp_tc_egress"));
}

bool BpfFastPath::attach_egress(uint8_t port, std::string& error) {
  if (port >= kMaxPorts || !devices_[port].ifindex) {
    error = "port " + std::to_string(port) + " has no device (set_port_device first)";
    return false;
  }
  const int ifindex = devices_[port].ifindex;
  if (egress_ifindex_[port] && egress_ifindex_[port] != ifindex) detach_egress(port);
  bpf_tc_hook h = tc_hook(ifindex, BPF_TC_EGRESS);
  int err = bpf_tc_hook_create(&h);
  if (err && err != -EEXIST) {
    error = "cannot create clsact on ifindex " + std::to_string(ifindex) + ": " + strerror(-err);
    return false;
  }
  bpf_tc_opts o = tc_filter(egress_prog_fd(devices_[port].rawip));
  if ((err = bpf_tc_attach(&h, &o))) {
    error = "cannot attach the tc egress program on ifindex " + std::to_string(ifindex) + ": " +
            strerror(-err);
    return false;
  }
  egress_ifindex_[port] = ifindex;
  if (!publish()) {
    error = "cannot publish the port's egress charging";
    return false;
  }
  return true;
}

void BpfFastPath::detach_egress(uint8_t port) {
  if (frozen_) return;
  if (port >= kMaxPorts || !egress_ifindex_[port]) return;
  const int ifindex = egress_ifindex_[port];
  egress_ifindex_[port] = 0;
  publish();
  bpf_tc_hook h = tc_hook(ifindex, BPF_TC_EGRESS);
  bpf_tc_opts o = tc_filter();
  // The clsact qdisc stays, as detach() leaves it: other filters may share it.
  bpf_tc_detach(&h, &o);
}

}  // namespace tp
