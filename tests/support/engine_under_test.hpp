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
  // The frame as the port's device carries it: a raw-IP port (a modem's rmnet) has no link
  // layer, so an Ethernet frame of the golden table loses its header (and tags) there.
  virtual Bytes on_wire(uint8_t /*port*/, const Bytes& frame) const { return frame; }
};

struct EngineKind {
  std::string name;
  // Null, with `why` set, when the engine cannot run here (no root, no BPF).
  std::function<std::unique_ptr<EngineUnderTest>(std::string& why)> make;
  // A variant of another kind's engine that only changes how frames arrive (a raw-IP port): the
  // golden table runs on it, the boundary tests need not run twice.
  bool golden_only = false;
};

// Every engine this build has: the DPDK engine, and the BPF engine where it is built.
std::vector<EngineKind> engine_kinds();
// Their names, for parametrized tests; without the golden-only variants unless asked.
std::vector<std::string> engine_kind_names(bool with_golden_only);
// The engine of that name, or null with `why` set when it cannot run here.
std::unique_ptr<EngineUnderTest> make_engine(const std::string& name, std::string& why);

}  // namespace tp::test
