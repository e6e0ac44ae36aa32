// The builder is the reference the golden tests compare against, so it is checked against
// published bytes and against an independent verifier.
#include <gtest/gtest.h>

#include "packet_builder.hpp"

namespace tp::test {
namespace {

TEST(PacketBuilder, Ipv4HeaderMatchesAPublishedExample) {
  // 4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7: the classic header checksum example.
  const Bytes f = PacketBuilder()
                      .eth("02:00:00:00:00:01", "02:00:00:00:00:02")
                      .ipv4("192.168.0.1", "192.168.0.199")
                      .ip_id(0)
                      .dont_fragment()
                      .ttl(64)
                      .udp(1, 2)
                      .payload(0x73 - 28)
                      .build();
  ASSERT_EQ(f.size(), 14u + 0x73);
  const Bytes header(f.begin() + 14, f.begin() + 34);
  EXPECT_EQ(hex(header), "4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7 ");
}

TEST(PacketBuilder, LayoutOfEveryLayer) {
  const Bytes f = PacketBuilder()
                      .eth("02:00:00:00:00:01", "02:00:00:00:00:02")
                      .vlan(20, 3)
                      .ipv6("2001:db8::1", "2001:db8::2")
                      .ipv6_ext(0)
                      .ipv6_ext(60, 1)
                      .tcp(1000, 2000, 0x12)
                      .payload(3)
                      .build();
  EXPECT_EQ(f[12], 0x81);
  EXPECT_EQ(f[14], 0x60);  // PCP 3, VID 20
  EXPECT_EQ(f[15], 20);
  EXPECT_EQ(f[16], 0x86);
  const size_t l3 = 18;
  EXPECT_EQ(f[l3 + 6], 0);    // next header: hop-by-hop
  EXPECT_EQ(f[l3 + 40], 60);  // then destination options
  EXPECT_EQ(f[l3 + 48], 6);   // then TCP
  EXPECT_EQ(f[l3 + 49], 1);   // 16-byte destination options
  EXPECT_EQ(f[l3 + 4] << 8 | f[l3 + 5], 8 + 16 + 20 + 3);
  EXPECT_EQ(f.size(), l3 + 40 + 8 + 16 + 20 + 3);
  EXPECT_EQ(verify_checksums(f), "");  // extension headers are skipped by payload length only
}

TEST(PacketBuilder, VerifierCatchesEveryCorruptedByte) {
  const Bytes good = PacketBuilder()
                         .eth("02:00:00:00:00:01", "02:00:00:00:00:02")
                         .ipv4("10.0.0.1", "10.0.0.2")
                         .tcp(1, 2)
                         .payload(9)
                         .build();
  ASSERT_EQ(verify_checksums(good), "");
  for (size_t i = 14; i < good.size(); ++i) {
    Bytes bad = good;
    bad[i] ^= 0x10;
    if (i == 14 || i == 16 || i == 17) continue;  // version/IHL and length change the layout itself
    EXPECT_NE(verify_checksums(bad), "") << "byte " << i;
  }
}

TEST(PacketBuilder, ChecksumsOfEveryTransport) {
  auto base = [] { return PacketBuilder().eth("02:00:00:00:00:01", "02:00:00:00:00:02"); };
  EXPECT_EQ(verify_checksums(base().ipv4("1.2.3.4", "5.6.7.8").udp(9, 10).payload(5).build()), "");
  EXPECT_EQ(verify_checksums(base().ipv4("1.2.3.4", "5.6.7.8").icmp(8, 0, 1, 2).payload(5).build()),
            "");
  EXPECT_EQ(
      verify_checksums(base().ipv6("2001:db8::1", "2001:db8::2").udp(9, 10).payload(5).build()),
      "");
  EXPECT_EQ(verify_checksums(base().ipv6("2001:db8::1", "2001:db8::2").icmp6(128, 0, 1, 2).build()),
            "");
  const Bytes zero =
      base().ipv4("1.2.3.4", "5.6.7.8").udp(9, 10).udp_no_checksum().payload(5).build();
  EXPECT_EQ(zero[14 + 20 + 6], 0);
  EXPECT_EQ(zero[14 + 20 + 7], 0);
  EXPECT_EQ(verify_checksums(zero), "");
}

TEST(PacketBuilder, OverridesProduceBrokenPackets) {
  const Bytes f = PacketBuilder()
                      .eth("02:00:00:00:00:01", "02:00:00:00:00:02")
                      .ipv4("1.2.3.4", "5.6.7.8")
                      .ihl(4)
                      .ip_total_length(999)
                      .bad_ip_checksum()
                      .udp(1, 2)
                      .build();
  EXPECT_EQ(f[14], 0x44);
  EXPECT_EQ(f[16] << 8 | f[17], 999);
}

TEST(PacketBuilder, RejectsBadAddresses) {
  EXPECT_THROW(ip4("192.0.2"), std::invalid_argument);
  EXPECT_THROW(ip6("2001:db8"), std::invalid_argument);
  EXPECT_THROW(mac("02:00"), std::invalid_argument);
}

}  // namespace
}  // namespace tp::test
