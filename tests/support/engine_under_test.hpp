// One engine behind the boundary plus a way to put a frame through it, so that tests of the
// boundary and the shared golden table run unchanged against every engine.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "fast_path.hpp"
#include "packet_builder.hpp"

namespace tp::test {

class EngineUnderTest {
 public:
  virtual ~EngineUnderTest() = default;
  virtual FastPath& engine() = 0;
  // One frame in on `in_port`: "port:N" if forwarded out of port N, otherwise the name of the
  // exception reason; `out` gets the frame as it left or as the kernel gets it. "skip:why" for a
  // frame the engine's test rig cannot present (the kernel's test-run needs a full Ethernet
  // header, for one).
  virtual std::string send(uint8_t in_port, const Bytes& frame, Bytes* out = nullptr) = 0;
};

struct EngineKind {
  std::string name;
  // Null, with `why` set, when the engine cannot run here (no root, no BPF).
  std::function<std::unique_ptr<EngineUnderTest>(std::string& why)> make;
};

// Every engine this build has: the DPDK engine, and the BPF engine where it is built.
std::vector<EngineKind> engine_kinds();

}  // namespace tp::test
