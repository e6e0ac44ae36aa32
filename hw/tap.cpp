#include "tap.hpp"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_arp.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

namespace tp::hw {
namespace {

// Interface ioctls go through any socket.
struct CtlSocket {
  CtlSocket() : fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {}
  ~CtlSocket() {
    if (fd >= 0) close(fd);
  }
  int fd;
};

ifreq request(const std::string& name) {
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  return ifr;
}

}  // namespace

std::unique_ptr<Tap> Tap::create(const std::string& name, const std::array<uint8_t, 6>& mac,
                                 uint16_t mtu, std::string& error) {
  const int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    error = "cannot open /dev/net/tun: " + std::string(std::strerror(errno));
    return nullptr;
  }
  std::unique_ptr<Tap> tap(new Tap(fd, name));
  ifreq ifr = request(name);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    error = "cannot create TAP " + name + ": " + std::strerror(errno) +
            (errno == EBUSY ? " (an interface of that name exists)" : "");
    return nullptr;
  }
  // Persistent while we run: if the daemon dies, the interface and everything the kernel has
  // configured on it (addresses, routes, neighbours) stay, and a restarted daemon reattaches.
  // A clean shutdown clears the flag and the interface goes away.
  if (ioctl(fd, TUNSETPERSIST, 1) < 0) {
    error = "cannot make TAP " + name + " persistent: " + std::strerror(errno);
    return nullptr;
  }
  CtlSocket s;
  ifr = request(name);
  ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
  std::memcpy(ifr.ifr_hwaddr.sa_data, mac.data(), 6);
  if (ioctl(s.fd, SIOCSIFHWADDR, &ifr) < 0) {
    error = "cannot set the MAC of " + name + ": " + std::strerror(errno);
    return nullptr;
  }
  ifr = request(name);
  ifr.ifr_mtu = mtu;
  if (ioctl(s.fd, SIOCSIFMTU, &ifr) < 0) {
    error = "cannot set the MTU of " + name + " to " + std::to_string(mtu) + ": " +
            std::strerror(errno);
    return nullptr;
  }
  ifr = request(name);
  if (ioctl(s.fd, SIOCGIFFLAGS, &ifr) == 0) {
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(s.fd, SIOCSIFFLAGS, &ifr) < 0) {
      error = "cannot bring " + name + " up: " + std::strerror(errno);
      return nullptr;
    }
  }
  return tap;
}

Tap::~Tap() {
  ioctl(fd_, TUNSETPERSIST, 0);
  close(fd_);
}

bool Tap::set_carrier(bool up) {
  int on = up ? 1 : 0;
  return ioctl(fd_, TUNSETCARRIER, &on) == 0;
}

bool Tap::admin_up() const {
  CtlSocket s;
  ifreq ifr = request(name_);
  if (ioctl(s.fd, SIOCGIFFLAGS, &ifr) < 0) return false;
  return ifr.ifr_flags & IFF_UP;
}

uint16_t Tap::mtu() const {
  CtlSocket s;
  ifreq ifr = request(name_);
  if (ioctl(s.fd, SIOCGIFMTU, &ifr) < 0 || ifr.ifr_mtu <= 0) return 0;
  return static_cast<uint16_t>(std::min(ifr.ifr_mtu, 65535));
}

// No netlink message announces a change of it (the kernel sets it from a router advertisement
// silently), so it is read where the kernel shows it.
uint16_t Tap::ipv6_mtu() const {
  std::ifstream f("/proc/sys/net/ipv6/conf/" + name_ + "/mtu");
  unsigned v = 0;
  if (!(f >> v)) return mtu();
  return static_cast<uint16_t>(std::min(v, 65535u));
}

long Tap::read_frame(void* buf, std::size_t len) {
  const ssize_t n = read(fd_, buf, len);
  if (n >= 0) return n;
  return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
}

bool Tap::write_frame(const void* buf, std::size_t len) {
  return write(fd_, buf, len) == static_cast<ssize_t>(len);
}

}  // namespace tp::hw
