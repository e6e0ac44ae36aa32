// The kernel engine on devices of its own, for the BPF benchmark and fuzzer: a private network
// namespace with a veth for each port (its peer runs GRO, so each takes XDP redirects), a
// BpfFastPath whose ports sit on them, and one call that puts a frame through a program by
// BPF_PROG_TEST_RUN. The namespace and everything in it go away with the rig (or the process).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "bpf_fast_path.hpp"
#include "netns.hpp"
#include "packet_builder.hpp"

namespace tp::test {

class BpfRig {
 public:
  // tc_csum_complete: the skb arrives CHECKSUM_COMPLETE and the kernel fails the run (EBADMSG)
  // if the program leaves skb->csum inconsistent. tc_nonlinear: only the Ethernet header is in
  // the skb's linear part, the rest in a fragment, as a GRO'd or paged skb may arrive, so every
  // header the program reads must be pulled first (kernels whose test run builds such skbs).
  // tc_egress: the data limits' egress program (tp_tc_egress) on the port's device.
  enum class Mode { tc, tc_csum_complete, tc_nonlinear, xdp, tc_egress };
  static constexpr uint8_t kPorts = 8;  // the golden table uses ports up to 7

  // Null, with `why` set, when it cannot run here (not root, no namespace, the programs do not
  // load). The calling thread stays in the rig's namespace until the rig is destroyed.
  // `raw_ip_port`: a port whose device has no link layer (as a modem's rmnet), whose frames go
  // through the tc raw-IP program; kNoPort for none.
  static constexpr uint8_t kNoPort = 0xff;
  static std::unique_ptr<BpfRig> create(std::string& why, uint32_t flow_capacity = 4096,
                                        uint8_t raw_ip_port = kNoPort);
  ~BpfRig();
  BpfRig(const BpfRig&) = delete;
  BpfRig& operator=(const BpfRig&) = delete;

  BpfFastPath& engine() { return *fp_; }
  bool has_xdp() const { return fp_->prog_fd(BpfFastPath::Hook::xdp) >= 0; }
  const std::string& xdp_unavailable() const { return fp_->xdp_unavailable(); }

  struct Result {
    int err = 0;               // errno of the test run, 0 when it ran
    uint32_t verdict = 0;      // the program's return value (of the last repetition)
    uint32_t duration_ns = 0;  // the kernel's mean per repetition, in whole ns (truncated)
    Bytes out;                 // the frame as it left (tc: a tag put in skb->vlan_tci added back)
  };
  // `repeat` runs of the program back to back on the same buffer, timed by the kernel: the
  // syscall and the buffer's set-up fall outside duration_ns. Each run sees what the previous
  // one left.
  const Result& run(Mode mode, uint8_t in_port, const Bytes& frame, uint32_t repeat = 1);

  // Whether this kernel's test run builds non-linear skbs (__sk_buff.data_end in ctx_in).
  bool nonlinear_supported();

  static bool forwarded(Mode mode, uint32_t verdict);
  static bool punted(Mode mode, uint32_t verdict);

 private:
  BpfRig() = default;
  bool init(std::string& why, uint32_t flow_capacity);

  uint8_t raw_ip_port_ = kNoPort;

  std::unique_ptr<PrivateNetns> ns_;
  std::array<int, kPorts> ifindex_{};
  std::unique_ptr<BpfFastPath> fp_;
  Bytes buf_;
  Result result_;
};

}  // namespace tp::test
