// The golden cases made to survive BPF_PROG_TEST_RUN's `repeat`, which runs the program again on
// the packet the previous run left: a forwarded frame must come back as a frame that takes the
// same path. So every next hop a golden flow leaves by writes the MACs its frames arrived with
// (the rewritten frame is addressed to the ingress port again), and for each NAT case a second
// flow on the ingress port matches the translated frame and translates it back (ping-pong: SNAT,
// then the inverse SNAT). IPv6 flows only route, so the frame matches its own flow again. TTL and
// hop limit start at 255, so that up to kMaxRepeat runs all forward. Punt cases leave the frame
// as it is and need nothing.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "fast_path.hpp"
#include "golden_cases.hpp"

namespace tp::test {

// Each run takes one off the TTL, which must stay above 1 for the next.
inline constexpr uint32_t kMaxRepeat = 253;

struct BenchCase {
  std::string name;
  uint8_t in_port = 0;
  Bytes frame;                           // forwarding cases: TTL / hop limit 255
  std::optional<uint8_t> out_port;       // forwarded: every repetition leaves by this port
  Bytes once, twice;                     // forwarded: the frame after one and after two runs
  Reason reason = Reason::unknown_flow;  // punted: what every repetition counts
};

// Every forwarding case of the golden table, and the punt cases named in `punts` (by name).
// Empty with `error` set if a case cannot be made to ping-pong.
std::vector<BenchCase> bench_cases(const std::vector<std::string>& punts, std::string& error);

// The golden state, the next hops re-addressed and the inverse flows, through the boundary.
// "" or what could not be installed.
std::string install_bench_state(FastPath& engine);

}  // namespace tp::test
