#include "bpf_rig.hpp"

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <net/if.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "maps.h"

namespace tp::test {
namespace {

bool sh(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0; }

constexpr uint32_t kNonLinearHead = 14;

}  // namespace

std::unique_ptr<BpfRig> BpfRig::create(std::string& why, uint32_t flow_capacity,
                                       uint8_t raw_ip_port) {
  std::unique_ptr<BpfRig> rig(new BpfRig());
  rig->raw_ip_port_ = raw_ip_port;
  if (!rig->init(why, flow_capacity)) return nullptr;
  return rig;
}

BpfRig::~BpfRig() {
  fp_.reset();  // programs and maps first, then the devices go with the namespace
  ns_.reset();
}

bool BpfRig::init(std::string& why, uint32_t flow_capacity) {
  if (geteuid() != 0) {
    why = "needs root (BPF programs and a network namespace of its own)";
    return false;
  }
  ns_ = std::make_unique<PrivateNetns>();
  if (!ns_->ok()) {
    why = "cannot create a network namespace";
    return false;
  }
  // A veth whose peer runs GRO takes redirected XDP frames; this kernel may have no dummy driver.
  for (uint8_t p = 0; p < kPorts; ++p) {
    const std::string dev = "tp" + std::to_string(p);
    const bool ok = sh("ip link add " + dev + " type veth peer name " + dev + "p && ip link set " +
                       dev + "p up && ethtool -K " + dev + "p gro on");
    if (!ok || !sh("ip link set " + dev + " up")) {
      why = "cannot create " + dev + " (ip, ethtool, veth)";
      return false;
    }
    ifindex_[p] = static_cast<int>(if_nametoindex(dev.c_str()));
  }
  fp_ = BpfFastPath::create(BpfOptions{flow_capacity, 1024}, why);
  if (!fp_) return false;
  for (uint8_t p = 0; p < kPorts; ++p)
    if (int err = fp_->set_port_device(p, ifindex_[p], p == raw_ip_port_)) {
      why = "set_port_device: " + std::string(std::strerror(-err));
      return false;
    }
  return true;
}

bool BpfRig::nonlinear_supported() {
  Bytes frame(64, 0);
  frame[12] = 0x08;  // IPv4 ethertype, junk after it: only a refusal of the context matters
  return run(Mode::tc_nonlinear, 0, frame).err != EINVAL;
}

bool BpfRig::forwarded(Mode mode, uint32_t verdict) {
  return mode == Mode::xdp ? verdict == XDP_REDIRECT : verdict == TC_ACT_REDIRECT;
}

bool BpfRig::punted(Mode mode, uint32_t verdict) {
  // tc punts with TC_ACT_PIPE (later filters still run); anything else would be a change of design.
  return mode == Mode::xdp ? verdict == XDP_PASS : verdict == TC_ACT_PIPE;
}

const BpfRig::Result& BpfRig::run(Mode mode, uint8_t in_port, const Bytes& frame, uint32_t repeat) {
  result_.err = 0;
  result_.verdict = result_.duration_ns = 0;
  result_.out.clear();  // keeps its capacity: no allocation per run once warm
  // Room for a pushed tag (XDP) and for whatever the kernel appends; reused between runs.
  if (buf_.size() < frame.size() + 256) buf_.resize(frame.size() + 256);
  // Filled by hand rather than with LIBBPF_OPTS, a GNU statement expression that clang's
  // -Wpedantic refuses in C++. sz tells libbpf which fields this build knows.
  bpf_test_run_opts o{};
  o.sz = sizeof(o);
  o.data_in = frame.data();
  o.data_out = buf_.data();
  o.data_size_in = static_cast<uint32_t>(frame.size());
  o.data_size_out = static_cast<uint32_t>(buf_.size());
  o.repeat = static_cast<int>(repeat);
  __sk_buff skb{}, skb_out{};
  xdp_md xdp{};
  int fd;
  if (mode == Mode::xdp) {
    xdp.data_end = static_cast<uint32_t>(frame.size());
    xdp.ingress_ifindex = static_cast<uint32_t>(ifindex_[in_port % kPorts]);
    o.ctx_in = &xdp;
    o.ctx_size_in = sizeof(xdp);
    fd = fp_->prog_fd(BpfFastPath::Hook::xdp);
  } else {
    skb.ifindex = static_cast<uint32_t>(ifindex_[in_port % kPorts]);
    o.ctx_in = &skb;
    o.ctx_size_in = sizeof(skb);
    o.ctx_out = &skb_out;
    o.ctx_size_out = sizeof(skb_out);
    if (mode == Mode::tc_csum_complete) o.flags = BPF_F_TEST_SKB_CHECKSUM_COMPLETE;
    if (mode == Mode::tc_nonlinear)
      skb.data_end = std::min<uint32_t>(kNonLinearHead, static_cast<uint32_t>(frame.size()));
    // A raw-IP frame needs no link layer, but the test run takes its first 14 bytes for one
    // before handing the program the frame from its start, as a raw-IP device's skb is.
    fd =
        fp_->prog_fd(in_port == raw_ip_port_ ? BpfFastPath::Hook::tc_rawip : BpfFastPath::Hook::tc);
    if (mode == Mode::tc_egress) fd = fp_->egress_prog_fd(in_port == raw_ip_port_);
  }
  if (bpf_prog_test_run_opts(fd, &o) != 0) {
    result_.err = errno;
    return result_;
  }
  result_.verdict = o.retval;
  result_.duration_ns = o.duration;
  result_.out.assign(buf_.begin(), buf_.begin() + o.data_size_out);
  if (mode != Mode::xdp && forwarded(mode, o.retval) && (skb_out.cb[0] & TP_CB_VLAN_PUSHED)) {
    // The tag went into skb->vlan_tci; on the wire it is in the frame.
    const uint16_t tci = static_cast<uint16_t>(skb_out.cb[0]);
    const uint8_t tag[4] = {0x81, 0x00, static_cast<uint8_t>(tci >> 8), static_cast<uint8_t>(tci)};
    result_.out.insert(result_.out.begin() + 12, tag, tag + 4);
  }
  return result_;
}

}  // namespace tp::test
