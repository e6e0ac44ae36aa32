#include "bpf_under_test.hpp"

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <net/if.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "bpf_fast_path.hpp"
#include "maps.h"
#include "netns.hpp"

namespace tp::test {
namespace {

enum class Mode { tc, tc_csum_complete, tc_nonlinear, xdp };

// Non-linear test skbs: only the Ethernet header in the linear part, the rest in a fragment, as a
// GRO'd or paged skb may arrive, so every header the program reads must be pulled first.
constexpr uint32_t kNonLinearHead = 14;

bool sh(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0; }

// Every port on a veth whose peer runs GRO, so that it takes XDP redirects (this kernel may have
// no dummy driver); the golden table uses ports up to 7.
constexpr uint8_t kPorts = 8;

class BpfUnderTest final : public EngineUnderTest {
 public:
  explicit BpfUnderTest(Mode mode) : mode_(mode) {}

  bool init(std::string& why) {
    if (geteuid() != 0) {
      why = "needs root (BPF programs and a network namespace)";
      return false;
    }
    ns_ = std::make_unique<PrivateNetns>();
    if (!ns_->ok()) {
      why = "cannot create a network namespace";
      return false;
    }
    for (uint8_t p = 0; p < kPorts; ++p) {
      const std::string dev = "tp" + std::to_string(p);
      const bool ok = sh("ip link add " + dev + " type veth peer name " + dev +
                         "p && ip link set " + dev + "p up && ethtool -K " + dev + "p gro on");
      if (!ok || !sh("ip link set " + dev + " up")) {
        why = "cannot create " + dev;
        return false;
      }
      ifindex_[p] = static_cast<int>(if_nametoindex(dev.c_str()));
    }
    fp_ = BpfFastPath::create(BpfOptions{4096, 1024}, why);
    if (!fp_) return false;
    if (mode_ == Mode::xdp && fp_->prog_fd(BpfFastPath::Hook::xdp) < 0) {
      why = fp_->xdp_unavailable();
      return false;
    }
    for (uint8_t p = 0; p < kPorts; ++p)
      if (int err = fp_->set_port_device(p, ifindex_[p], false)) {
        why = "set_port_device: " + std::string(std::strerror(-err));
        return false;
      }
    if (mode_ == Mode::tc_nonlinear && !nonlinear_supported()) {
      why = "this kernel's test run builds no non-linear skbs (__sk_buff.data_end in ctx_in)";
      return false;
    }
    return true;
  }

  // Kernels that cannot build a non-linear test skb refuse a ctx_in with data_end set.
  bool nonlinear_supported() {
    Bytes frame(64, 0);
    frame[12] = 0x08;  // IPv4 ethertype, junk after it: only the refusal matters
    __sk_buff skb{};
    skb.ifindex = static_cast<uint32_t>(ifindex_[0]);
    skb.data_end = kNonLinearHead;
    LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame.data(),
                .data_size_in = static_cast<uint32_t>(frame.size()), .ctx_in = &skb,
                .ctx_size_in = sizeof(skb));
    return bpf_prog_test_run_opts(fp_->prog_fd(BpfFastPath::Hook::tc), &o) == 0;
  }

  FastPath& engine() override { return *fp_; }

  std::string send(uint8_t in_port, const Bytes& frame, Bytes* out) override {
    if (frame.size() < 14) return "skip:the kernel's test run needs a full Ethernet header";
    if (in_port >= kPorts) return "skip:no device for port " + std::to_string(in_port);
    std::array<PortCounts, kPorts> before;
    for (uint8_t p = 0; p < kPorts; ++p) before[p] = fp_->port_counts(p);
    const ReasonTotals reasons_before = fp_->reasons();

    Bytes data(frame.size() + 256);
    LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame.data(), .data_out = data.data(),
                .data_size_in = static_cast<uint32_t>(frame.size()),
                .data_size_out = static_cast<uint32_t>(data.size()));
    __sk_buff skb{}, skb_out{};
    xdp_md xdp{};
    int fd;
    if (mode_ == Mode::xdp) {
      xdp.data_end = static_cast<uint32_t>(frame.size());
      xdp.ingress_ifindex = static_cast<uint32_t>(ifindex_[in_port]);
      o.ctx_in = &xdp;
      o.ctx_size_in = sizeof(xdp);
      fd = fp_->prog_fd(BpfFastPath::Hook::xdp);
    } else {
      skb.ifindex = static_cast<uint32_t>(ifindex_[in_port]);
      o.ctx_in = &skb;
      o.ctx_size_in = sizeof(skb);
      o.ctx_out = &skb_out;
      o.ctx_size_out = sizeof(skb_out);
      if (mode_ == Mode::tc_csum_complete) o.flags = BPF_F_TEST_SKB_CHECKSUM_COMPLETE;
      if (mode_ == Mode::tc_nonlinear)
        skb.data_end = std::min<uint32_t>(kNonLinearHead, static_cast<uint32_t>(frame.size()));
      fd = fp_->prog_fd(BpfFastPath::Hook::tc);
    }
    if (bpf_prog_test_run_opts(fd, &o) != 0) {
      const int err = errno;
      const bool outer_tag = frame[12] == 0x81 && frame[13] == 0x00;
      const uint16_t type = static_cast<uint16_t>(frame[12] << 8 | frame[13]);
      if (err == EINVAL && ((type == 0x0800 && frame.size() < 14 + 20) ||
                            (type == 0x86dd && frame.size() < 14 + 40)))
        return "skip:the kernel's skb test run refuses an IP frame shorter than its IP header";
      if (mode_ == Mode::tc_csum_complete && err == EINVAL)
        return "skip:this kernel's test run has no BPF_F_TEST_SKB_CHECKSUM_COMPLETE";
      // Before tc the kernel moves an outer tag into skb->vlan_tci, adjusting skb->csum; the
      // test run leaves it in the frame, under a checksum bpf_skb_vlan_pop does not expect.
      if (mode_ == Mode::tc_csum_complete && err == EBADMSG && outer_tag)
        return "skip:an outer tag left in the frame under CHECKSUM_COMPLETE (test run only)";
      return std::string("test run failed: ") + std::strerror(err);
    }
    data.resize(o.data_size_out);
    if (mode_ != Mode::xdp && (skb_out.cb[0] & TP_CB_VLAN_PUSHED)) {
      // The tag went into skb->vlan_tci; on the wire it is in the frame.
      const uint16_t tci = static_cast<uint16_t>(skb_out.cb[0]);
      const uint8_t tag[4] = {0x81, 0x00, static_cast<uint8_t>(tci >> 8),
                              static_cast<uint8_t>(tci)};
      data.insert(data.begin() + 12, tag, tag + 4);
    }
    if (out) *out = data;
    const bool redirected =
        mode_ == Mode::xdp ? o.retval == XDP_REDIRECT : o.retval == TC_ACT_REDIRECT;
    if (redirected) {
      for (uint8_t p = 0; p < kPorts; ++p)
        if (fp_->port_counts(p).fwd_tx_packets != before[p].fwd_tx_packets)
          return "port:" + std::to_string(p);
      return "redirected, but no port counted it";
    }
    const bool passed = mode_ == Mode::xdp ? o.retval == XDP_PASS : o.retval == TC_ACT_PIPE;
    if (!passed) return "unexpected verdict " + std::to_string(o.retval);
    const ReasonTotals after = fp_->reasons();
    for (size_t r = 0; r < kReasonCount; ++r)
      if (after[r] != reasons_before[r]) return std::string(name(static_cast<Reason>(r)));
    return "passed without a reason";
  }

 private:
  Mode mode_;
  std::unique_ptr<PrivateNetns> ns_;
  std::array<int, kPorts> ifindex_{};
  std::unique_ptr<BpfFastPath> fp_;
};

EngineKind kind(const char* name, Mode mode) {
  return {name, [mode](std::string& why) -> std::unique_ptr<EngineUnderTest> {
            auto ut = std::make_unique<BpfUnderTest>(mode);
            if (!ut->init(why)) return nullptr;
            return ut;
          }};
}

}  // namespace

void add_bpf_engine_kinds(std::vector<EngineKind>& kinds) {
  kinds.push_back(kind("bpf_tc", Mode::tc));
  kinds.push_back(kind("bpf_tc_csum_complete", Mode::tc_csum_complete));
  kinds.push_back(kind("bpf_tc_nonlinear", Mode::tc_nonlinear));
  kinds.push_back(kind("bpf_xdp", Mode::xdp));
}

}  // namespace tp::test
