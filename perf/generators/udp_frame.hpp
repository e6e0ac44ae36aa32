// The perf lab's test frame, shared by its two senders (tpgen on DPDK ports, xdpgen from an XDP
// program): Ethernet, IPv4 or IPv6, UDP from a client port to the discard port, and a payload
// that starts with a magic word and a TSC stamp.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "checksum.hpp"

namespace tp::perf {

constexpr uint32_t kMagic = 0x74707067;  // "tppg": our packets among whatever else arrives
constexpr uint16_t kClientPortBase = 1024;
constexpr uint16_t kServerPort = 9;  // discard

// 64-byte frames, IMIX (7:4:1 of 64, 570, 1518 bytes) or 1500-byte frames (sizes without FCS).
// IPv6 cannot fit its headers and our 12-byte stamp in 64 bytes: its smallest frame is 78 on the
// wire, as RFC 5180 has it.
inline std::vector<uint16_t> frame_sizes(const std::string& size, int family) {
  const uint16_t smallest = family == 6 ? 74 : 60;
  if (size == "imix") {
    std::vector<uint16_t> v;
    for (int i = 0; i < 7; ++i) v.push_back(smallest);
    for (int i = 0; i < 4; ++i) v.push_back(566);
    v.push_back(1514);
    return v;
  }
  const int n = std::atoi(size.c_str());
  const int len = n == 64 ? smallest : n == 1500 ? 1514 : n;
  return {static_cast<uint16_t>(std::max<int>(smallest, std::min(1514, len)))};
}

// Who sends to whom: the client's and the box's MACs, the client's and the server's addresses.
struct FrameEnds {
  int family = 4;
  uint8_t client_mac[6]{}, box_mac[6]{};
  uint8_t client_ip[16]{}, server_ip[16]{};

  static bool parse_mac(const std::string& s, uint8_t* mac) {
    unsigned v[6];
    char tail;
    if (std::sscanf(s.c_str(), "%x:%x:%x:%x:%x:%x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                    &tail) != 6)
      return false;
    for (int i = 0; i < 6; ++i) {
      if (v[i] > 0xff) return false;
      mac[i] = static_cast<uint8_t>(v[i]);
    }
    return true;
  }
};

// What both senders are told about their frames, on the command line.
struct FrameOptions {
  int family = 4;
  uint32_t flows = 1;
  std::string size = "64";
  std::string client_mac, box_mac, client_ip, server_ip;

  // Takes one "--name value" pair if it is one of these; false if it is not.
  bool take(const std::string& name, const std::string& v) {
    if (name == "--family")
      family = std::atoi(v.c_str());
    else if (name == "--flows")
      flows = static_cast<uint32_t>(std::strtoul(v.c_str(), nullptr, 10));
    else if (name == "--size")
      size = v;
    else if (name == "--client-mac")
      client_mac = v;
    else if (name == "--box-mac")
      box_mac = v;
    else if (name == "--client-ip")
      client_ip = v;
    else if (name == "--server-ip")
      server_ip = v;
    else
      return false;
    return true;
  }

  // Fills e; returns what is wrong with the options, or an empty string.
  std::string ends(FrameEnds& e) const {
    if (family != 4 && family != 6) return "--family must be 4 or 6";
    if (flows < 1 || flows > 65535u - kClientPortBase)
      return "--flows must be 1 to " + std::to_string(65535u - kClientPortBase);
    e.family = family;
    if (!FrameEnds::parse_mac(client_mac, e.client_mac) ||
        !FrameEnds::parse_mac(box_mac, e.box_mac))
      return "--client-mac and --box-mac must be MAC addresses";
    const int af = family == 4 ? AF_INET : AF_INET6;
    if (inet_pton(af, client_ip.c_str(), e.client_ip) != 1 ||
        inet_pton(af, server_ip.c_str(), e.server_ip) != 1)
      return std::string("--client-ip and --server-ip must be IPv") + (family == 4 ? "4" : "6") +
             " addresses";
    return {};
  }
};

// Writes a len-byte frame at p. IPv4 leaves the UDP checksum 0 (optional there); IPv6 must have it.
inline void fill_udp_frame(uint8_t* p, uint16_t len, const FrameEnds& e, uint16_t sport,
                           uint64_t stamp) {
  std::memset(p, 0, len);
  std::memcpy(p, e.box_mac, 6);
  std::memcpy(p + 6, e.client_mac, 6);
  const bool v4 = e.family == 4;
  p[12] = v4 ? 0x08 : 0x86;
  p[13] = v4 ? 0x00 : 0xdd;
  uint8_t* ip = p + 14;
  const uint16_t ip_len = static_cast<uint16_t>(len - 14);
  uint8_t* udp;
  if (v4) {
    ip[0] = 0x45;
    ip[2] = ip_len >> 8;
    ip[3] = ip_len & 0xff;
    ip[8] = 64;
    ip[9] = IPPROTO_UDP;
    std::memcpy(ip + 12, e.client_ip, 4);
    std::memcpy(ip + 16, e.server_ip, 4);
    const uint16_t c = tp::csum::finish(tp::csum::sum_bytes(ip, 20));
    ip[10] = c >> 8;
    ip[11] = c & 0xff;
    udp = ip + 20;
  } else {
    ip[0] = 0x60;
    const uint16_t pl = static_cast<uint16_t>(ip_len - 40);
    ip[4] = pl >> 8;
    ip[5] = pl & 0xff;
    ip[6] = IPPROTO_UDP;
    ip[7] = 64;
    std::memcpy(ip + 8, e.client_ip, 16);
    std::memcpy(ip + 24, e.server_ip, 16);
    udp = ip + 40;
  }
  const uint16_t udp_len = static_cast<uint16_t>(p + len - udp);
  udp[0] = sport >> 8;
  udp[1] = sport & 0xff;
  udp[3] = kServerPort;
  udp[4] = udp_len >> 8;
  udp[5] = udp_len & 0xff;
  std::memcpy(udp + 8, &kMagic, 4);
  std::memcpy(udp + 12, &stamp, 8);
  if (!v4) {  // pseudo-header plus the datagram (mostly zeros)
    uint16_t c = tp::csum::finish(
        tp::csum::sum_bytes(udp, 20, tp::csum::sum_bytes(ip + 8, 32) + udp_len + IPPROTO_UDP));
    if (c == 0) c = 0xffff;
    udp[6] = c >> 8;
    udp[7] = c & 0xff;
  }
}

}  // namespace tp::perf
