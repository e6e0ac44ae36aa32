// The packet-golden table both engines run (katran, cilium): {description, ingress port, input
// frame, expected egress port and exact output bytes, or the exception reason}. Expected frames
// are built independently with full checksum computation, so every incremental update is checked.
// The DPDK engine runs it in test_engine_golden.cpp, the BPF programs (XDP and tc, through
// BPF_PROG_TEST_RUN) in test_bpf_golden.cpp; new cases go here, into the one table.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "fast_path.hpp"
#include "lab_topology.hpp"
#include "packet_builder.hpp"

namespace tp::test {

inline constexpr uint8_t kAck = 0x10, kSyn = 0x02, kFin = 0x01, kRst = 0x04, kPsh = 0x08;
inline constexpr uint16_t kCport = 40000, kNatPort = 61000;

struct Golden {
  std::string name;
  uint8_t in_port;
  Bytes in;
  // Forwarded: the egress port and exact bytes. Otherwise the reason.
  std::optional<uint8_t> out_port;
  Bytes out;
  Reason reason = Reason::unknown_flow;
};

// Frames of the offloaded flows, as the Wi-Fi client sends them and as the server answers, and as
// they leave the box.
PacketBuilder up4();
PacketBuilder down4();
PacketBuilder up4_out();
PacketBuilder down4_out();
PacketBuilder up6();
PacketBuilder down6();
PacketBuilder up6_out();
PacketBuilder down6_out();

std::vector<Golden> golden_forwarding_cases();
std::vector<Golden> golden_exception_cases();

// The lab topology and every flow the cases expect, written through the engine boundary.
void install_golden_state(FastPath& engine);

}  // namespace tp::test
