#include "packet_builder.hpp"

#include <arpa/inet.h>

#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "checksum.hpp"

namespace tp::test {
namespace {

void put16(Bytes& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}
void set16(Bytes& b, std::size_t at, uint16_t v) {
  b[at] = static_cast<uint8_t>(v >> 8);
  b[at + 1] = static_cast<uint8_t>(v);
}
uint16_t get16(const Bytes& b, std::size_t at) {
  return static_cast<uint16_t>(b[at] << 8 | b[at + 1]);
}
void append(Bytes& b, const void* p, std::size_t n) {
  auto* c = static_cast<const uint8_t*>(p);
  b.insert(b.end(), c, c + n);
}

bool is_ext(uint8_t t) {
  return t == 0 || t == 43 || t == 44 || t == 60 || t == 51 || t == 135 || t == 139 || t == 140 ||
         t == 253 || t == 254;
}

}  // namespace

Mac mac(const std::string& text) {
  Mac m{};
  unsigned v[6];
  if (std::sscanf(text.c_str(), "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6)
    throw std::invalid_argument("bad MAC " + text);
  for (int i = 0; i < 6; ++i) m[i] = static_cast<uint8_t>(v[i]);
  return m;
}

uint32_t ip4(const std::string& text) {
  in_addr a{};
  if (inet_pton(AF_INET, text.c_str(), &a) != 1) throw std::invalid_argument("bad IPv4 " + text);
  return a.s_addr;
}

std::array<uint8_t, 16> ip6(const std::string& text) {
  std::array<uint8_t, 16> a{};
  if (inet_pton(AF_INET6, text.c_str(), a.data()) != 1)
    throw std::invalid_argument("bad IPv6 " + text);
  return a;
}

PacketBuilder& PacketBuilder::eth(const std::string& src, const std::string& dst) {
  src_mac_ = mac(src);
  dst_mac_ = mac(dst);
  return *this;
}
PacketBuilder& PacketBuilder::ethertype(uint16_t t) {
  raw_ethertype_ = t;
  return *this;
}
PacketBuilder& PacketBuilder::vlan(uint16_t id, uint8_t pcp) {
  vlans_.push_back({id, pcp});
  return *this;
}
PacketBuilder& PacketBuilder::vlan2(uint16_t id) { return vlan(id); }
PacketBuilder& PacketBuilder::ipv4(const std::string& s, const std::string& d) {
  version_ = 4;
  src4_ = ip4(s);
  dst4_ = ip4(d);
  return *this;
}
PacketBuilder& PacketBuilder::ttl(uint8_t v) {
  ttl_ = v;
  return *this;
}
PacketBuilder& PacketBuilder::ip_id(uint16_t v) {
  ip_id_ = v;
  return *this;
}
PacketBuilder& PacketBuilder::frag(bool mf, uint16_t off) {
  frag_ = static_cast<uint16_t>((frag_ & 0x4000) | (mf ? 0x2000 : 0) | (off & 0x1fff));
  return *this;
}
PacketBuilder& PacketBuilder::dont_fragment() {
  frag_ |= 0x4000;
  return *this;
}
PacketBuilder& PacketBuilder::ipv4_options(const Bytes& o) {
  options_ = o;
  while (options_.size() % 4) options_.push_back(0);
  return *this;
}
PacketBuilder& PacketBuilder::ihl(uint8_t v) {
  ihl_ = v;
  return *this;
}
PacketBuilder& PacketBuilder::ip_total_length(uint16_t v) {
  total_length_ = v;
  return *this;
}
PacketBuilder& PacketBuilder::bad_ip_checksum() {
  bad_ip_csum_ = true;
  return *this;
}
PacketBuilder& PacketBuilder::ipv6(const std::string& s, const std::string& d) {
  version_ = 6;
  src6_ = ip6(s);
  dst6_ = ip6(d);
  return *this;
}
PacketBuilder& PacketBuilder::hop_limit(uint8_t v) {
  ttl_ = v;
  return *this;
}
PacketBuilder& PacketBuilder::ipv6_ext(uint8_t type, uint8_t len) {
  ext_.push_back({type, len});
  return *this;
}
PacketBuilder& PacketBuilder::ipv6_payload_length(uint16_t v) {
  total_length_ = v;
  return *this;
}
PacketBuilder& PacketBuilder::tcp(uint16_t s, uint16_t d, uint8_t flags) {
  proto_ = 6;
  sport_ = s;
  dport_ = d;
  tcp_flags_ = flags;
  return *this;
}
PacketBuilder& PacketBuilder::tcp_data_offset(uint8_t w) {
  tcp_doff_ = w;
  return *this;
}
PacketBuilder& PacketBuilder::udp(uint16_t s, uint16_t d) {
  proto_ = 17;
  sport_ = s;
  dport_ = d;
  return *this;
}
PacketBuilder& PacketBuilder::udp_no_checksum() {
  udp_no_csum_ = true;
  return *this;
}
PacketBuilder& PacketBuilder::icmp(uint8_t type, uint8_t code, uint16_t id, uint16_t seq) {
  proto_ = 1;
  icmp_type_ = type;
  icmp_code_ = code;
  icmp_id_ = id;
  icmp_seq_ = seq;
  return *this;
}
PacketBuilder& PacketBuilder::icmp6(uint8_t type, uint8_t code, uint16_t id, uint16_t seq) {
  icmp(type, code, id, seq);
  proto_ = 58;
  return *this;
}
PacketBuilder& PacketBuilder::l4_proto(uint8_t p) {
  proto_ = p;
  return *this;
}
PacketBuilder& PacketBuilder::payload(const Bytes& d) {
  payload_ = d;
  return *this;
}
PacketBuilder& PacketBuilder::payload(std::size_t n, uint8_t fill) {
  payload_.assign(n, fill);
  return *this;
}

// The transport header and payload with its checksum; `pseudo` is src+dst addresses (may be
// empty for ICMPv4, which has no pseudo-header).
Bytes PacketBuilder::l4_bytes(const Bytes& pseudo) const {
  Bytes l4;
  std::size_t csum_at = 0;
  bool has_csum = true;
  switch (proto_) {
    case 6:
      put16(l4, sport_);
      put16(l4, dport_);
      put16(l4, 0x0102);
      put16(l4, 0x0304);  // seq
      put16(l4, 0x0506);
      put16(l4, 0x0708);  // ack
      l4.push_back(static_cast<uint8_t>((tcp_doff_.value_or(5)) << 4));
      l4.push_back(tcp_flags_);
      put16(l4, 0xffff);  // window
      put16(l4, 0);       // checksum
      put16(l4, 0);       // urgent
      csum_at = 16;
      break;
    case 17:
      put16(l4, sport_);
      put16(l4, dport_);
      put16(l4, static_cast<uint16_t>(8 + payload_.size()));
      put16(l4, 0);
      csum_at = 6;
      has_csum = !udp_no_csum_;
      break;
    case 1:
    case 58:
      l4.push_back(icmp_type_);
      l4.push_back(icmp_code_);
      put16(l4, 0);
      put16(l4, icmp_id_);
      put16(l4, icmp_seq_);
      csum_at = 2;
      break;
    default:
      has_csum = false;
  }
  l4.insert(l4.end(), payload_.begin(), payload_.end());
  if (has_csum) {
    uint32_t sum = 0;
    if (proto_ != 1) {  // pseudo-header: addresses, protocol, upper-layer length
      sum = csum::sum_bytes(pseudo.data(), pseudo.size());
      sum += proto_ + static_cast<uint32_t>(l4.size());
    }
    uint16_t c = csum::finish(csum::sum_bytes(l4.data(), l4.size(), sum));
    if (proto_ == 17 && c == 0) c = 0xffff;
    set16(l4, csum_at, c);
  }
  return l4;
}

Bytes PacketBuilder::build() const {
  Bytes f;
  append(f, dst_mac_.data(), 6);
  append(f, src_mac_.data(), 6);
  for (std::size_t i = 0; i < vlans_.size(); ++i) {
    put16(f, i == 0 && vlans_.size() > 1 ? 0x88a8 : 0x8100);
    put16(f, static_cast<uint16_t>(vlans_[i].second << 13 | vlans_[i].first));
  }
  if (raw_ethertype_) {
    put16(f, *raw_ethertype_);
    f.insert(f.end(), payload_.begin(), payload_.end());
    return f;
  }
  if (version_ == 4) {
    put16(f, 0x0800);
    Bytes pseudo;
    append(pseudo, &src4_, 4);
    append(pseudo, &dst4_, 4);
    const Bytes l4 = l4_bytes(pseudo);
    const std::size_t l3 = f.size();
    const uint8_t ihl = ihl_.value_or(static_cast<uint8_t>(5 + options_.size() / 4));
    f.push_back(static_cast<uint8_t>(0x40 | (ihl & 0x0f)));
    f.push_back(0);
    put16(f, total_length_.value_or(static_cast<uint16_t>(20 + options_.size() + l4.size())));
    put16(f, ip_id_);
    put16(f, frag_);
    f.push_back(ttl_);
    f.push_back(proto_);
    put16(f, 0);
    append(f, &src4_, 4);
    append(f, &dst4_, 4);
    f.insert(f.end(), options_.begin(), options_.end());
    const std::size_t hlen = f.size() - l3;
    uint16_t c = csum::finish(csum::sum_bytes(f.data() + l3, hlen));
    if (bad_ip_csum_) c = static_cast<uint16_t>(c ^ 0x5a5a);
    set16(f, l3 + 10, c);
    f.insert(f.end(), l4.begin(), l4.end());
  } else if (version_ == 6) {
    put16(f, 0x86dd);
    Bytes pseudo;
    append(pseudo, src6_.data(), 16);
    append(pseudo, dst6_.data(), 16);
    const Bytes l4 = l4_bytes(pseudo);
    Bytes ext;
    for (std::size_t i = 0; i < ext_.size(); ++i) {
      const uint8_t next = i + 1 < ext_.size() ? ext_[i + 1].first : proto_;
      const auto [type, len] = ext_[i];
      const std::size_t size = type == 44 ? 8 : type == 51 ? (len + 2u) * 4 : (len + 1u) * 8;
      Bytes h(size, 0);
      h[0] = next;
      h[1] = type == 44 ? 0 : len;
      if (!is_ext(type)) h[1] = 0;
      ext.insert(ext.end(), h.begin(), h.end());
    }
    put16(f, 0x6000);
    put16(f, 0);
    put16(f, total_length_.value_or(static_cast<uint16_t>(ext.size() + l4.size())));
    f.push_back(ext_.empty() ? proto_ : ext_[0].first);
    f.push_back(ttl_);
    append(f, src6_.data(), 16);
    append(f, dst6_.data(), 16);
    f.insert(f.end(), ext.begin(), ext.end());
    f.insert(f.end(), l4.begin(), l4.end());
  }
  return f;
}

std::string verify_checksums(const Bytes& f) {
  std::size_t l3 = 14;
  uint16_t type = get16(f, 12);
  while (type == 0x8100 || type == 0x88a8) {
    type = get16(f, l3 + 2);
    l3 += 4;
  }
  std::size_t l4 = 0, l4_len = 0;
  uint8_t proto = 0;
  uint32_t pseudo = 0;
  if (type == 0x0800) {
    const std::size_t hlen = (f[l3] & 0x0f) * 4u;
    if (csum::fold(csum::sum_bytes(f.data() + l3, hlen)) != 0xffff)
      return "bad IPv4 header checksum";
    proto = f[l3 + 9];
    l4 = l3 + hlen;
    l4_len = get16(f, l3 + 2) - hlen;
    pseudo = csum::sum_bytes(f.data() + l3 + 12, 8) + proto + static_cast<uint32_t>(l4_len);
  } else if (type == 0x86dd) {
    proto = f[l3 + 6];
    l4 = l3 + 40;
    l4_len = get16(f, l3 + 4);
    pseudo = csum::sum_bytes(f.data() + l3 + 8, 32) + proto + static_cast<uint32_t>(l4_len);
  } else {
    return "";
  }
  if (proto == 1) pseudo = 0;
  if (proto != 6 && proto != 17 && proto != 1 && proto != 58) return "";
  if (proto == 17 && type == 0x0800 && get16(f, l4 + 6) == 0) return "";
  if (csum::fold(csum::sum_bytes(f.data() + l4, l4_len, pseudo)) != 0xffff)
    return "bad L4 checksum (proto " + std::to_string(proto) + ")";
  return "";
}

std::string hex(const Bytes& b) {
  std::string s;
  char buf[4];
  for (std::size_t i = 0; i < b.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%02x", b[i]);
    s += buf;
    if (i % 2 == 1) s += ' ';
  }
  return s;
}

}  // namespace tp::test
