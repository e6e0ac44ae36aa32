// The kernel's view of a port: a TAP interface with the port's name and MAC. The kernel routes,
// NATs and answers ARP/ND through it as if it were the NIC; tetherpath moves frames between the
// TAP and the port (exception path) and mirrors link state both ways.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>

namespace tp::hw {

class Tap {
 public:
  // Creates the interface (or attaches to the one a crashed daemon left), sets its MAC and MTU and
  // brings it up. nullptr and `error` on failure.
  static std::unique_ptr<Tap> create(const std::string& name, const std::array<uint8_t, 6>& mac,
                                     uint16_t mtu, std::string& error);
  ~Tap();  // removes the interface
  Tap(const Tap&) = delete;
  Tap& operator=(const Tap&) = delete;

  const std::string& name() const { return name_; }
  int fd() const { return fd_; }

  // Carrier as the kernel shows it (NO-CARRIER when off), mirroring the port's link.
  bool set_carrier(bool up);
  // The administrative state someone set with `ip link set NAME up|down`; nullopt-like false on
  // error.
  bool admin_up() const;
  // The kernel's MTU of the interface (`ip link set NAME mtu`), and its IPv6 MTU, which a router
  // advertisement or net.ipv6.conf.NAME.mtu may set lower (the link MTU when the interface has no
  // IPv6). 0 on error.
  uint16_t mtu() const;
  uint16_t ipv6_mtu() const;

  // Non-blocking frame I/O. read_frame returns the length, 0 when nothing is waiting, -1 on error.
  long read_frame(void* buf, std::size_t len);
  // True when the kernel took the whole frame.
  bool write_frame(const void* buf, std::size_t len);

 private:
  Tap(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}
  int fd_;
  std::string name_;
};

}  // namespace tp::hw
