// Whether a device takes XDP frames redirected to it (ndo_xdp_xmit), as the kernel itself reports
// through the netdev generic netlink family (Linux 6.3+). A veth reports it only while its peer
// runs NAPI (GRO on, or an XDP program on the peer); without that, frames redirected into it are
// dropped silently, so the engine must not redirect XDP frames to a device that does not say yes.
#pragma once

#include <string>

namespace tp {

enum class XdpTarget { yes, no, unknown };

// `why` says what was found, or why nothing could be (an older kernel has no netdev family).
XdpTarget xdp_redirect_target(int ifindex, std::string& why);

}  // namespace tp
