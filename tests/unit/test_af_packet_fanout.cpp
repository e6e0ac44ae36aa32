// AF_PACKET sockets of this process never ask the kernel to reassemble IPv4 fragments
// (hw/af_packet_fanout.hpp): neither a socket set up by hand nor the ones DPDK's net_af_packet
// opens for a port, which would otherwise cut every datagram larger than a ring frame. Needs
// CAP_NET_RAW (the test suite runs as root); skipped without it.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "af_packet_fanout.hpp"
#include "dpdk_env.hpp"
#include "port.hpp"

namespace tp {
namespace {

struct PacketSocket {
  PacketSocket() : fd(socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL))) {}
  ~PacketSocket() {
    if (fd >= 0) close(fd);
  }
  bool bind_lo() const {
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = static_cast<int>(if_nametoindex("lo"));
    return bind(fd, reinterpret_cast<const sockaddr*>(&sll), sizeof sll) == 0;
  }
  int fd;
};

// The fanout as the kernel reports it: id | type << 16 | flags << 24.
uint32_t fanout_of(int fd) {
  uint32_t v = 0;
  socklen_t len = sizeof v;
  EXPECT_EQ(getsockopt(fd, SOL_PACKET, PACKET_FANOUT, &v, &len), 0);
  return v;
}

constexpr uint32_t kRolloverFlag = PACKET_FANOUT_FLAG_ROLLOVER >> 8;

// net_af_packet's request, as an int: DEFRAG goes, the rest is kept.
TEST(AfPacketFanout, ARequestAsAnIntLosesOnlyTheDefragFlag) {
  PacketSocket s;
  if (s.fd < 0 && errno == EPERM) GTEST_SKIP() << "needs CAP_NET_RAW";
  ASSERT_GE(s.fd, 0);
  ASSERT_TRUE(s.bind_lo());
  const int id = (getpid() ^ 0x5a5a) & 0xffff;
  const int request =
      id | (PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG | PACKET_FANOUT_FLAG_ROLLOVER) << 16;
  ASSERT_EQ(setsockopt(s.fd, SOL_PACKET, PACKET_FANOUT, &request, sizeof request), 0);
  const uint32_t got = fanout_of(s.fd);
  EXPECT_EQ(got & 0xffff, static_cast<uint32_t>(id));
  EXPECT_EQ((got >> 16) & 0xff, uint32_t{PACKET_FANOUT_HASH});
  EXPECT_EQ(got >> 24, kRolloverFlag);
  EXPECT_FALSE(hw::af_packet_reassembles(s.fd));
}

TEST(AfPacketFanout, ARequestAsFanoutArgsLosesOnlyTheDefragFlag) {
  PacketSocket s;
  if (s.fd < 0 && errno == EPERM) GTEST_SKIP() << "needs CAP_NET_RAW";
  ASSERT_GE(s.fd, 0);
  ASSERT_TRUE(s.bind_lo());
  fanout_args args{};
  args.id = static_cast<uint16_t>((getpid() ^ 0xa5a5) & 0xffff);
  args.type_flags = PACKET_FANOUT_LB | PACKET_FANOUT_FLAG_DEFRAG;
  args.max_num_members = 4;
  ASSERT_EQ(setsockopt(s.fd, SOL_PACKET, PACKET_FANOUT, &args, sizeof args), 0);
  const uint32_t got = fanout_of(s.fd);
  EXPECT_EQ(got & 0xffff, args.id);
  EXPECT_EQ((got >> 16) & 0xff, uint32_t{PACKET_FANOUT_LB});
  EXPECT_EQ(got >> 24, 0u);
}

// Other options pass through unchanged, errors included.
TEST(AfPacketFanout, OtherOptionsPassThrough) {
  PacketSocket s;
  if (s.fd < 0 && errno == EPERM) GTEST_SKIP() << "needs CAP_NET_RAW";
  ASSERT_GE(s.fd, 0);
  const int version = TPACKET_V2;
  ASSERT_EQ(setsockopt(s.fd, SOL_PACKET, PACKET_VERSION, &version, sizeof version), 0);
  int got = 0;
  socklen_t len = sizeof got;
  ASSERT_EQ(getsockopt(s.fd, SOL_PACKET, PACKET_VERSION, &got, &len), 0);
  EXPECT_EQ(got, TPACKET_V2);
  const short too_short = 1;
  errno = 0;
  EXPECT_EQ(setsockopt(s.fd, SOL_PACKET, PACKET_FANOUT, &too_short, sizeof too_short), -1);
  EXPECT_EQ(errno, EINVAL);
}

// The sockets DPDK's net_af_packet opens for a port, which asks for PACKET_FANOUT_FLAG_DEFRAG.
// (On lo the PMD logs that it cannot restore a MAC address at start: lo has none to set.)
TEST(AfPacketFanout, APortsSocketsDoNotReassemble) {
  {
    PacketSocket probe;
    if (probe.fd < 0 && errno == EPERM) GTEST_SKIP() << "needs CAP_NET_RAW";
  }
  test::init_eal();
  hw::PortSpec spec;
  spec.name = "ut_afp";
  spec.device = "net_af_packet_ut0,iface=lo,framecnt=64";
  std::string error;
  auto port = hw::Port::open(spec, test::mbuf_pool(), error);
  ASSERT_NE(port, nullptr) << error;
  const int fd = port->rx_wait_fd(0);
  ASSERT_GE(fd, 0);
  const uint32_t got = fanout_of(fd);
  EXPECT_EQ((got >> 16) & 0xff, uint32_t{PACKET_FANOUT_HASH}) << "still a hash fanout group";
  EXPECT_FALSE(hw::af_packet_reassembles(fd));
}

}  // namespace
}  // namespace tp
