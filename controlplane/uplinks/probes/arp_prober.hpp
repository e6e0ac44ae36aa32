// ARP probes (mwan3's `arping`): an ARP request for every target, broadcast on the uplink's
// interface, answered by the target's ARP reply. It proves the link and the next hop (typically
// the gateway) without depending on anything beyond them, and works where ICMP is filtered. The
// targets are IPv4 neighbours on the interface's link. Needs CAP_NET_RAW (a packet socket).
//
// The interface may come and go (a phone's USB network): each round looks it up again, and a
// round on a missing or non-Ethernet interface sends nothing, so it counts as lost. Only replies
// to this box's address and MAC count, and only while a round is open (ARP has no sequence).
#pragma once

#include <array>

#include "prober.hpp"

namespace tp {

class ArpProber : public Prober {
 public:
  // Throws std::runtime_error when the packet socket cannot be opened.
  ArpProber(boost::asio::io_context& io, std::string iface, std::vector<IpAddr> targets,
            std::chrono::milliseconds interval, std::chrono::milliseconds timeout,
            std::function<void(const ProbeRound&)> on_round);
  ~ArpProber() override;

 private:
  using Packet = boost::asio::generic::datagram_protocol;
  void send_probes(uint16_t seq) override;
  bool bind_to_interface();
  void receive();

  Packet::socket sock_;
  Packet::endpoint from_;
  int ifindex_ = 0;  // the socket's binding; 0: none
  bool told_not_ethernet_ = false;
  std::array<uint8_t, 4> own_ip_{};
  std::array<uint8_t, 6> own_mac_{};
  std::array<uint8_t, 64> rx_{};
};

}  // namespace tp
