// Switching a kernel interface administratively up or down, as Android's netd does for
// EthernetManager.setEthernetEnabled (SIOCSIFFLAGS). tetherpath's ports are kernel interfaces in
// both engines (the kernel engine's own netdevs, the DPDK engine's TAPs); each runtime's link
// poll follows the change from there, whoever made it.
#pragma once

#include <string>

namespace tp {

// An error message, or empty when the interface's IFF_UP is now `up`.
std::string set_interface_up(const std::string& name, bool up);

}  // namespace tp
