// Ping rounds over one uplink: echo requests to every target out of the uplink's interface
// (SO_BINDTODEVICE, so the probe takes that uplink whatever the routing says), answers matched by
// identifier, sequence and source, a round closed after the timeout. Needs CAP_NET_RAW (raw ICMP
// sockets), as the daemon has.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "asio.hpp"
#include "ip_addr.hpp"
#include "uplink_health.hpp"

namespace tp {

class IcmpProber {
 public:
  using Clock = std::chrono::steady_clock;
  // Throws std::runtime_error when the sockets cannot be opened.
  IcmpProber(boost::asio::io_context& io, std::string iface, std::vector<IpAddr> targets,
             std::chrono::milliseconds interval, std::chrono::milliseconds timeout,
             std::function<void(const ProbeRound&)> on_round);
  ~IcmpProber();
  IcmpProber(const IcmpProber&) = delete;
  IcmpProber& operator=(const IcmpProber&) = delete;

  uint64_t sent() const { return sent_; }
  uint64_t answered() const { return answered_; }

 private:
  using Raw = boost::asio::generic::raw_protocol;
  void open(Raw::socket& s, int family);
  void start_round();
  void finish_round();
  void receive(Raw::socket& s, int family);
  void answered(int family, const uint8_t* icmp, std::size_t len, const IpAddr& from);

  std::string iface_;
  std::vector<IpAddr> targets_;
  std::chrono::milliseconds interval_, timeout_;
  std::function<void(const ProbeRound&)> on_round_;
  Raw::socket sock4_, sock6_;
  boost::asio::steady_timer round_timer_, timeout_timer_;
  std::array<uint8_t, 2048> rx4_{}, rx6_{};
  uint16_t ident_;
  uint16_t seq_ = 0;
  Clock::time_point round_start_;
  ProbeRound round_;
  uint64_t sent_ = 0, answered_ = 0;
};

}  // namespace tp
