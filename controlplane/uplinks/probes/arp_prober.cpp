#include "arp_prober.hpp"

#include <linux/if_arp.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cstring>
#include <iostream>
#include <stdexcept>

#include "daemon_log.hpp"

namespace tp {

namespace {

constexpr std::size_t kArpLen = 28;  // Ethernet/IPv4 ARP: header 8, two (MAC, IPv4) pairs

boost::asio::generic::datagram_protocol::endpoint link_endpoint(int ifindex, bool broadcast) {
  sockaddr_ll ll{};
  ll.sll_family = AF_PACKET;
  ll.sll_protocol = htons(ETH_P_ARP);
  ll.sll_ifindex = ifindex;
  if (broadcast) {
    ll.sll_halen = 6;
    std::memset(ll.sll_addr, 0xff, 6);
  }
  return {reinterpret_cast<const sockaddr*>(&ll), sizeof ll};
}

}  // namespace

ArpProber::ArpProber(boost::asio::io_context& io, std::string iface, std::vector<IpAddr> targets,
                     std::chrono::milliseconds interval, std::chrono::milliseconds timeout,
                     std::function<void(const ProbeRound&)> on_round)
    : Prober(io, std::move(iface), std::move(targets), interval, timeout, std::move(on_round)),
      sock_(io) {
  // Protocol 0: nothing arrives until bind() names the interface and ARP, so no other
  // interface's ARP is ever read.
  boost::system::error_code ec;
  sock_.open(Packet(AF_PACKET, 0), ec);
  if (ec) throw std::runtime_error("ARP probe socket for " + iface_ + ": " + ec.message());
  receive();
  start();
}

ArpProber::~ArpProber() {
  boost::system::error_code ec;
  sock_.close(ec);
}

// The socket follows the interface's current index (a packet socket may be bound again); the
// address and MAC are read again each round, so a renumbered uplink is probed with its new
// address.
bool ArpProber::bind_to_interface() {
  const int ifindex = static_cast<int>(::if_nametoindex(iface_.c_str()));
  if (ifindex == 0) return false;
  if (ifindex != ifindex_) {
    boost::system::error_code ec;
    sock_.bind(link_endpoint(ifindex, false), ec);
    if (ec) return false;
    ifindex_ = ifindex;
  }
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, iface_.c_str(), IFNAMSIZ - 1);
  if (::ioctl(sock_.native_handle(), SIOCGIFHWADDR, &ifr) < 0) return false;
  if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER) {
    if (!told_not_ethernet_)
      log::warning() << "ARP probes on " << iface_
                     << ": not an Ethernet interface (no ARP); track it with ping\n";
    told_not_ethernet_ = true;
    return false;
  }
  std::memcpy(own_mac_.data(), ifr.ifr_hwaddr.sa_data, 6);
  // No IPv4 address yet: an ARP probe with sender 0.0.0.0 (RFC 5227), which hosts answer too.
  own_ip_ = {};
  if (::ioctl(sock_.native_handle(), SIOCGIFADDR, &ifr) == 0)
    std::memcpy(own_ip_.data(), &reinterpret_cast<const sockaddr_in*>(&ifr.ifr_addr)->sin_addr, 4);
  return true;
}

void ArpProber::send_probes(uint16_t) {
  if (!bind_to_interface()) return;
  for (const IpAddr& t : targets_) {
    std::array<uint8_t, kArpLen> req{0, 1, 8, 0, 6, 4, 0, 1};  // Ethernet, IPv4, request
    std::memcpy(&req[8], own_mac_.data(), 6);
    std::memcpy(&req[14], own_ip_.data(), 4);
    std::memcpy(&req[24], t.bytes.data(), 4);  // target MAC (18..23) unknown: zero
    boost::system::error_code ec;              // no carrier: the target does not answer this round
    sock_.send_to(boost::asio::buffer(req), link_endpoint(ifindex_, true), 0, ec);
    ++sent_;
  }
}

void ArpProber::receive() {
  sock_.async_receive_from(
      boost::asio::buffer(rx_), from_, [this](const boost::system::error_code& ec, std::size_t n) {
        if (ec == boost::asio::error::operation_aborted || !sock_.is_open()) return;
        const auto* ll = reinterpret_cast<const sockaddr_ll*>(from_.data());
        const uint8_t* p = rx_.data();
        // An Ethernet/IPv4 reply to this box (not one seen in passing, not a gratuitous
        // broadcast) for this prober's question: to its address and MAC, from a target.
        if (!ec && n >= kArpLen && ll->sll_pkttype == PACKET_HOST && p[0] == 0 && p[1] == 1 &&
            p[2] == 8 && p[3] == 0 && p[4] == 6 && p[5] == 4 && p[6] == 0 && p[7] == 2 &&
            std::memcmp(&p[18], own_mac_.data(), 6) == 0 &&
            std::memcmp(&p[24], own_ip_.data(), 4) == 0) {
          uint32_t sender;
          std::memcpy(&sender, &p[14], 4);
          answered_by(IpAddr::v4(sender));
        }
        receive();
      });
}

}  // namespace tp
