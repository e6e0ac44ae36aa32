#include "interface_admin.hpp"

#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace tp {

std::string set_interface_up(const std::string& name, bool up) {
  if (name.empty() || name.size() >= IFNAMSIZ) return "not an interface name: '" + name + "'";
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::string("socket: ") + std::strerror(errno);
  ifreq ifr{};
  name.copy(ifr.ifr_name, IFNAMSIZ - 1);
  std::string error;
  // Read-modify-write of the flags: the kernel has no "set one flag" request. A change by
  // someone else between the two calls is lost only in the flags it also touched.
  if (::ioctl(fd, SIOCGIFFLAGS, &ifr) != 0) {
    error = name + ": " + std::strerror(errno);
  } else if (bool(ifr.ifr_flags & IFF_UP) != up) {
    ifr.ifr_flags = static_cast<short>(up ? ifr.ifr_flags | IFF_UP : ifr.ifr_flags & ~IFF_UP);
    if (::ioctl(fd, SIOCSIFFLAGS, &ifr) != 0) error = name + ": " + std::strerror(errno);
  }
  ::close(fd);
  return error;
}

}  // namespace tp
