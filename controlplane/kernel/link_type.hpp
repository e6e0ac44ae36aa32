// Which kernel link types carry IP with no link-layer header: a modem's rmnet (ARPHRD_RAWIP), tun
// and WireGuard (ARPHRD_NONE), IPIP / ip6tnl / SIT tunnels. Such a port has no neighbours and
// no MACs; the kernel engine runs its raw-IP tc program there.
#pragma once

#include <net/if_arp.h>
namespace tp {

inline bool is_rawip_link(int arphrd) {
  switch (arphrd) {
    case ARPHRD_NONE:
    case ARPHRD_RAWIP:
    case ARPHRD_TUNNEL:
    case ARPHRD_TUNNEL6:
    case ARPHRD_SIT:
      return true;
    default:
      return false;
  }
}

}  // namespace tp
