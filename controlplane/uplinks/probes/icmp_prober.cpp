#include "icmp_prober.hpp"

#include <net/if.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>

namespace tp {

namespace {

uint16_t icmp_checksum(const uint8_t* p, std::size_t n) {
  uint32_t sum = 0;
  for (std::size_t i = 0; i + 1 < n; i += 2) sum += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
  if (n & 1) sum += static_cast<uint32_t>(p[n - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return htons(static_cast<uint16_t>(~sum));
}

boost::asio::generic::raw_protocol::endpoint endpoint_of(const IpAddr& a) {
  sockaddr_storage ss{};
  std::size_t len = 0;
  if (a.family == AF_INET) {
    auto* s = reinterpret_cast<sockaddr_in*>(&ss);
    s->sin_family = AF_INET;
    std::memcpy(&s->sin_addr, a.bytes.data(), 4);
    len = sizeof(sockaddr_in);
  } else {
    auto* s = reinterpret_cast<sockaddr_in6*>(&ss);
    s->sin6_family = AF_INET6;
    std::memcpy(&s->sin6_addr, a.bytes.data(), 16);
    len = sizeof(sockaddr_in6);
  }
  return {reinterpret_cast<sockaddr*>(&ss), len};
}

}  // namespace

IcmpProber::IcmpProber(boost::asio::io_context& io, std::string iface, std::vector<IpAddr> targets,
                       std::chrono::milliseconds interval, std::chrono::milliseconds timeout,
                       std::function<void(const ProbeRound&)> on_round)
    : Prober(io, std::move(iface), std::move(targets), interval, timeout, std::move(on_round)),
      sock4_(io),
      sock6_(io),
      // Raw sockets see every echo reply of the namespace's interface: the identifier (and the
      // sequence) tell this prober's own.
      ident_(static_cast<uint16_t>(::getpid() ^ reinterpret_cast<uintptr_t>(this))) {
  for (const IpAddr& t : targets_) {
    if (t.family == AF_INET && !sock4_.is_open()) open(sock4_, AF_INET);
    if (t.family == AF_INET6 && !sock6_.is_open()) open(sock6_, AF_INET6);
  }
  if (sock4_.is_open()) receive(sock4_, AF_INET);
  if (sock6_.is_open()) receive(sock6_, AF_INET6);
  start();
}

IcmpProber::~IcmpProber() {
  boost::system::error_code ec;
  sock4_.close(ec);
  sock6_.close(ec);
}

void IcmpProber::open(Raw::socket& s, int family) {
  boost::system::error_code ec;
  s.open(Raw(family, family == AF_INET ? int{IPPROTO_ICMP} : int{IPPROTO_ICMPV6}), ec);
  if (ec) throw std::runtime_error("probe socket for " + iface_ + ": " + ec.message());
  if (::setsockopt(s.native_handle(), SOL_SOCKET, SO_BINDTODEVICE, iface_.c_str(),
                   static_cast<socklen_t>(iface_.size())) < 0)
    throw std::runtime_error("probe socket: cannot bind to " + iface_ + ": " +
                             std::strerror(errno));
  if (family == AF_INET6) {  // only echo replies reach this socket
    icmp6_filter f;
    ICMP6_FILTER_SETBLOCKALL(&f);
    ICMP6_FILTER_SETPASS(ICMP6_ECHO_REPLY, &f);
    ::setsockopt(s.native_handle(), IPPROTO_ICMPV6, ICMP6_FILTER, &f, sizeof f);
  }
}

void IcmpProber::send_probes(uint16_t seq) {
  for (const IpAddr& t : targets_) {
    std::array<uint8_t, 16> echo{};  // type, code, checksum, identifier, sequence, 8 bytes data
    echo[0] = t.family == AF_INET ? ICMP_ECHO : ICMP6_ECHO_REQUEST;
    echo[4] = static_cast<uint8_t>(ident_ >> 8);
    echo[5] = static_cast<uint8_t>(ident_);
    echo[6] = static_cast<uint8_t>(seq >> 8);
    echo[7] = static_cast<uint8_t>(seq);
    std::memcpy(echo.data() + 8, "tethrpth", 8);
    if (t.family == AF_INET) {  // the kernel sums ICMPv6 itself
      const uint16_t c = icmp_checksum(echo.data(), echo.size());
      std::memcpy(echo.data() + 2, &c, 2);
    }
    Raw::socket& s = t.family == AF_INET ? sock4_ : sock6_;
    boost::system::error_code ec;  // no link, no route: the target does not answer this round
    s.send_to(boost::asio::buffer(echo), endpoint_of(t), 0, ec);
    ++sent_;
  }
}

void IcmpProber::receive(Raw::socket& s, int family) {
  auto* buf = family == AF_INET ? &rx4_ : &rx6_;
  auto from = std::make_shared<Raw::endpoint>();
  s.async_receive_from(
      boost::asio::buffer(*buf), *from,
      [this, &s, family, buf, from](const boost::system::error_code& ec, std::size_t n) {
        if (ec == boost::asio::error::operation_aborted || !s.is_open()) return;
        if (!ec) {
          const auto* sa = reinterpret_cast<const sockaddr*>(from->data());
          IpAddr src;
          if (sa->sa_family == AF_INET)
            src = IpAddr::v4(reinterpret_cast<const sockaddr_in*>(sa)->sin_addr.s_addr);
          else
            src = IpAddr::v6(&reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr);
          const uint8_t* p = buf->data();
          if (family == AF_INET) {  // raw IPv4 sockets hand over the IP header too
            const std::size_t ihl = n ? (p[0] & 0x0f) * 4u : 0;
            if (n >= ihl + 8 && ihl >= 20) echo_reply(family, p + ihl, n - ihl, src);
          } else {
            echo_reply(family, p, n, src);
          }
        }
        receive(s, family);
      });
}

void IcmpProber::echo_reply(int family, const uint8_t* icmp, std::size_t len, const IpAddr& from) {
  if (len < 8) return;
  const uint8_t reply = family == AF_INET ? ICMP_ECHOREPLY : ICMP6_ECHO_REPLY;
  const uint16_t ident = static_cast<uint16_t>(icmp[4] << 8 | icmp[5]);
  const uint16_t seq = static_cast<uint16_t>(icmp[6] << 8 | icmp[7]);
  if (icmp[0] != reply || ident != ident_ || seq != seq_) return;  // not ours, or too late
  answered_by(from);
}

}  // namespace tp
