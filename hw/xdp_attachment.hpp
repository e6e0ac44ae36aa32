// Which XDP program runs on a kernel interface, and in which mode, read through libxdp. An AF_XDP
// port whose program the kernel could only attach in generic (SKB) mode gets every frame through
// the kernel's generic path at a fraction of native speed, and nothing else says so: the daemon
// reports the mode at start and in `tetherctl ports`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace tp::hw {

struct XdpAttachment {
  std::string mode;  // native, skb (generic) or hw
  std::string
      program;  // the program that handles the frames (under libxdp's dispatcher: its first)
  uint32_t program_id = 0;
  int programs = 1;  // programs chained by libxdp's dispatcher; 1 without one
};

// nullopt when the interface does not exist or has no XDP program.
std::optional<XdpAttachment> xdp_attachment(const std::string& iface);

}  // namespace tp::hw
