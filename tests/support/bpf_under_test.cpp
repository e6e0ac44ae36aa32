#include "bpf_under_test.hpp"

#include <cerrno>
#include <cstring>

#include "bpf_rig.hpp"
#include "lab_topology.hpp"

namespace tp::test {
namespace {

using Mode = BpfRig::Mode;

class BpfUnderTest final : public EngineUnderTest {
 public:
  BpfUnderTest(Mode mode, uint8_t raw_ip_port) : mode_(mode), raw_ip_port_(raw_ip_port) {}

  bool init(std::string& why) {
    rig_ = BpfRig::create(why, 4096, raw_ip_port_);
    if (!rig_) return false;
    if (mode_ == Mode::xdp && !rig_->has_xdp()) {
      why = rig_->xdp_unavailable();
      return false;
    }
    if (mode_ == Mode::tc_nonlinear && !rig_->nonlinear_supported()) {
      why = "this kernel's test run builds no non-linear skbs (__sk_buff.data_end in ctx_in)";
      return false;
    }
    return true;
  }

  FastPath& engine() override { return rig_->engine(); }

  Bytes on_wire(uint8_t port, const Bytes& frame) const override {
    if (port != raw_ip_port_ || frame.size() < 14) return frame;
    size_t l3 = 12;
    while (l3 + 2 <= frame.size() && (frame[l3] == 0x81 || frame[l3] == 0x88) &&
           frame[l3 + 1] == 0x00)
      l3 += 4;  // 802.1Q / 802.1ad tags: a raw-IP device carries none
    const bool ip = l3 + 2 <= frame.size() && ((frame[l3] == 0x08 && frame[l3 + 1] == 0x00) ||
                                               (frame[l3] == 0x86 && frame[l3 + 1] == 0xdd));
    return ip ? Bytes(frame.begin() + static_cast<long>(l3 + 2), frame.end()) : frame;
  }

  std::string send(uint8_t in_port, const Bytes& frame, Bytes* out) override {
    if (in_port == raw_ip_port_ &&
        (frame.empty() || ((frame[0] >> 4) != 4 && (frame[0] >> 4) != 6)))
      return "skip:a raw-IP device carries only IP packets";
    if (frame.size() < 14) return "skip:the kernel's test run needs a full Ethernet header";
    if (in_port >= BpfRig::kPorts) return "skip:no device for port " + std::to_string(in_port);
    FastPath& fp = rig_->engine();
    std::array<PortCounts, BpfRig::kPorts> before;
    for (uint8_t p = 0; p < BpfRig::kPorts; ++p) before[p] = fp.port_counts(p);
    const ReasonTotals reasons_before = fp.reasons();

    const BpfRig::Result& r = rig_->run(mode_, in_port, frame);
    if (r.err) {
      const bool outer_tag = frame[12] == 0x81 && frame[13] == 0x00;
      const uint16_t type = static_cast<uint16_t>(frame[12] << 8 | frame[13]);
      if (r.err == EINVAL && ((type == 0x0800 && frame.size() < 14 + 20) ||
                              (type == 0x86dd && frame.size() < 14 + 40)))
        return "skip:the kernel's skb test run refuses an IP frame shorter than its IP header";
      if (mode_ == Mode::tc_csum_complete && r.err == EINVAL)
        return "skip:this kernel's test run has no BPF_F_TEST_SKB_CHECKSUM_COMPLETE";
      // Before tc the kernel moves an outer tag into skb->vlan_tci, adjusting skb->csum; the
      // test run leaves it in the frame, under a checksum bpf_skb_vlan_pop does not expect.
      if (mode_ == Mode::tc_csum_complete && r.err == EBADMSG && outer_tag)
        return "skip:an outer tag left in the frame under CHECKSUM_COMPLETE (test run only)";
      return std::string("test run failed: ") + std::strerror(r.err);
    }
    if (out) *out = r.out;
    if (BpfRig::forwarded(mode_, r.verdict)) {
      for (uint8_t p = 0; p < BpfRig::kPorts; ++p)
        if (fp.port_counts(p).fwd_tx_packets != before[p].fwd_tx_packets) {
          // A redirect to a device without a link layer pulls the MAC header off
          // (__bpf_redirect_no_mac); the test run does not redirect, so do it here.
          if (out && p == raw_ip_port_) *out = on_wire(p, r.out);
          return "port:" + std::to_string(p);
        }
      return "redirected, but no port counted it";
    }
    if (!BpfRig::punted(mode_, r.verdict)) return "unexpected verdict " + std::to_string(r.verdict);
    const ReasonTotals after = fp.reasons();
    for (size_t i = 0; i < kReasonCount; ++i)
      if (after[i] != reasons_before[i]) return std::string(name(static_cast<Reason>(i)));
    return "passed without a reason";
  }

 private:
  Mode mode_;
  uint8_t raw_ip_port_;
  std::unique_ptr<BpfRig> rig_;
};

EngineKind kind(const char* name, Mode mode, uint8_t raw_ip_port = BpfRig::kNoPort) {
  return {name, [mode, raw_ip_port](std::string& why) -> std::unique_ptr<EngineUnderTest> {
            auto ut = std::make_unique<BpfUnderTest>(mode, raw_ip_port);
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
  // The modem as a raw-IP device: tc's raw-IP program takes its frames (adding a link layer
  // toward the downstreams), and what leaves by it carries none.
  kinds.push_back(kind("bpf_tc_rawip_modem", Mode::tc, lab::kModem));
  kinds.back().golden_only = true;
}

}  // namespace tp::test
