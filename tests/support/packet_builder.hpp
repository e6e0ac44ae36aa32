// A fluent builder of test frames with every checksum computed in full (RFC 1071), so the engine's
// incremental updates are checked against an independent computation. Knobs that produce broken
// packets (wrong lengths, options, bad checksums) are explicit, for the malformed-input tables.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tp::test {

using Bytes = std::vector<uint8_t>;
using Mac = std::array<uint8_t, 6>;

Mac mac(const std::string& text);       // "02:00:00:00:00:01"
uint32_t ip4(const std::string& text);  // network order
std::array<uint8_t, 16> ip6(const std::string& text);

class PacketBuilder {
 public:
  PacketBuilder& eth(const std::string& src, const std::string& dst);
  PacketBuilder& ethertype(uint16_t type);  // raw L2 payload follows (non-IP cases)
  PacketBuilder& vlan(uint16_t id, uint8_t pcp = 0);
  PacketBuilder& vlan2(uint16_t id);  // a second (stacked) tag

  PacketBuilder& ipv4(const std::string& src, const std::string& dst);
  PacketBuilder& ttl(uint8_t v);
  PacketBuilder& ip_id(uint16_t v);
  PacketBuilder& frag(bool more_fragments, uint16_t offset_8byte_units);
  PacketBuilder& dont_fragment();
  PacketBuilder& ipv4_options(const Bytes& opts);  // padded to 4 bytes; raises IHL
  PacketBuilder& ihl(uint8_t v);                   // override, left inconsistent on purpose
  PacketBuilder& ip_total_length(uint16_t v);      // override
  PacketBuilder& bad_ip_checksum();

  PacketBuilder& ipv6(const std::string& src, const std::string& dst);
  PacketBuilder& hop_limit(uint8_t v);
  PacketBuilder& ipv6_ext(uint8_t type, uint8_t len_8byte_units = 0);  // appended in order
  PacketBuilder& ipv6_payload_length(uint16_t v);                      // override

  PacketBuilder& tcp(uint16_t sport, uint16_t dport, uint8_t flags = 0x10 /* ACK */);
  PacketBuilder& tcp_data_offset(uint8_t words);  // override
  PacketBuilder& udp(uint16_t sport, uint16_t dport);
  PacketBuilder& udp_no_checksum();
  PacketBuilder& icmp(uint8_t type, uint8_t code, uint16_t id = 0, uint16_t seq = 0);
  PacketBuilder& icmp6(uint8_t type, uint8_t code, uint16_t id = 0, uint16_t seq = 0);
  PacketBuilder& l4_proto(uint8_t proto);  // IP payload is raw bytes of that protocol

  PacketBuilder& payload(const Bytes& data);
  PacketBuilder& payload(std::size_t len, uint8_t fill = 0xab);

  Bytes build() const;

 private:
  Bytes l4_bytes(const Bytes& pseudo_header_src_dst) const;

  Mac src_mac_{}, dst_mac_{};
  std::optional<uint16_t> raw_ethertype_;
  std::vector<std::pair<uint16_t, uint8_t>> vlans_;
  int version_ = 0;
  uint32_t src4_ = 0, dst4_ = 0;
  std::array<uint8_t, 16> src6_{}, dst6_{};
  uint8_t ttl_ = 64;
  uint16_t ip_id_ = 0x1234;
  uint16_t frag_ = 0;
  Bytes options_;
  std::optional<uint8_t> ihl_;
  std::optional<uint16_t> total_length_;
  bool bad_ip_csum_ = false;
  std::vector<std::pair<uint8_t, uint8_t>> ext_;
  uint8_t proto_ = 0;
  uint16_t sport_ = 0, dport_ = 0;
  uint8_t tcp_flags_ = 0;
  std::optional<uint8_t> tcp_doff_;
  bool udp_no_csum_ = false;
  uint8_t icmp_type_ = 0, icmp_code_ = 0;
  uint16_t icmp_id_ = 0, icmp_seq_ = 0;
  Bytes payload_;
};

// Independent verification of a finished frame: IPv4 header checksum and the TCP/UDP/ICMP(v6)
// checksum by full recomputation. Returns "" when every checksum is right, else what is wrong.
std::string verify_checksums(const Bytes& frame);

std::string hex(const Bytes& b);

}  // namespace tp::test
