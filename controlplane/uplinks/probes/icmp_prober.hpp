// Ping probes (mwan3's `ping`): echo requests to every target out of the uplink's interface
// (SO_BINDTODEVICE, so the probe takes that uplink whatever the routing says), answers matched by
// identifier, sequence and source. Needs CAP_NET_RAW (raw ICMP sockets), as the daemon has.
#pragma once

#include <array>

#include "prober.hpp"

namespace tp {

class IcmpProber : public Prober {
 public:
  // Throws std::runtime_error when the sockets cannot be opened.
  IcmpProber(boost::asio::io_context& io, std::string iface, std::vector<IpAddr> targets,
             std::chrono::milliseconds interval, std::chrono::milliseconds timeout,
             std::function<void(const ProbeRound&)> on_round);
  ~IcmpProber() override;

 private:
  using Raw = boost::asio::generic::raw_protocol;
  void open(Raw::socket& s, int family);
  void send_probes(uint16_t seq) override;
  void receive(Raw::socket& s, int family);
  void echo_reply(int family, const uint8_t* icmp, std::size_t len, const IpAddr& from);

  Raw::socket sock4_, sock6_;
  std::array<uint8_t, 2048> rx4_{}, rx6_{};
  uint16_t ident_;
};

}  // namespace tp
