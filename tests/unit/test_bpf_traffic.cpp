// Real traffic through the kernel engine: a client, the box and a server, each in a network
// namespace of its own, joined by veth pairs; real UDP and TCP sockets (tests/support/traffic.py)
// talk through the box, whose engine is attached with BpfFastPath::attach and fed through the
// FastPath boundary (the lab topology: an IPv4 masquerade pair, an IPv6 routed pair). The box
// forwards nothing itself: IPv4/IPv6 forwarding is off, except for TCP, whose SYN/FIN/RST the
// engine leaves to the kernel; there a forward filter lets only those through, so every data
// segment crossed by BPF. The receivers verify checksums in software (rx checksumming off), so a
// datagram or segment with a wrong checksum is dropped and the exchange fails.
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <bpf/bpf.h>

#include "bpf_fast_path.hpp"
#include "lab_topology.hpp"

namespace tp::test {
namespace {

using namespace lab;

const std::string kCli = "tpbt-cli", kBox = "tpbt-box", kSrv = "tpbt-srv";
const std::string kTraffic = std::string(TP_TESTS_DIR) + "/support/traffic.py";
constexpr uint16_t kUdp = 5000, kTcp = 5001;

bool sh(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0; }

// Runs a command and returns its exit status, its output in `out`.
int run(const std::string& cmd, std::string& out) {
  out.clear();
  FILE* f = popen((cmd + " 2>&1").c_str(), "r");
  if (!f) return -1;
  char buf[512];
  while (fgets(buf, sizeof(buf), f)) out += buf;
  const int st = pclose(f);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

std::string in(const std::string& ns, const std::string& cmd) {
  return "ip netns exec " + ns + " " + cmd;
}

void delete_namespaces() {
  for (const auto& ns : {kCli, kBox, kSrv}) sh("ip netns del " + ns);
}

// The calling thread inside a named network namespace while this lives.
class EnterNetns {
 public:
  explicit EnterNetns(const std::string& name)
      : home_(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)) {
    const int fd = open(("/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC);
    ok_ = home_ >= 0 && fd >= 0 && setns(fd, CLONE_NEWNET) == 0;
    if (fd >= 0) close(fd);
  }
  ~EnterNetns() {
    if (home_ < 0) return;
    if (setns(home_, CLONE_NEWNET) != 0) std::abort();  // other tests must not run in the box
    close(home_);
  }
  EnterNetns(const EnterNetns&) = delete;
  EnterNetns& operator=(const EnterNetns&) = delete;
  bool ok() const { return ok_; }

 private:
  int home_;
  bool ok_ = false;
};

class BpfTrafficTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces, BPF programs)";
    if (!sh("command -v python3")) GTEST_SKIP() << "needs python3 for the sockets";
    delete_namespaces();  // a run killed earlier
    for (const auto& ns : {kCli, kBox, kSrv}) ASSERT_TRUE(sh("ip netns add " + ns));
    // The lab's MACs, so that the lab topology's next hops are the real neighbours.
    ASSERT_TRUE(sh("ip link add cli0 netns " + kCli + " address " + kWifiClientMac +
                   " type veth peer name boxc netns " + kBox + " address " + kWifiMac));
    ASSERT_TRUE(sh("ip link add srv0 netns " + kSrv + " address " + kGatewayMac +
                   " type veth peer name boxs netns " + kBox + " address " + kModemMac));
    const std::string mtu = std::to_string(kModemMtu);
    const char* setup[][2] = {
        {"cli", "ip link set lo up"},
        {"cli", "ip link set cli0 up"},
        {"cli", "ip addr add 192.168.50.10/24 dev cli0"},
        {"cli", "ip addr add 2001:db8:50::10/64 dev cli0 nodad"},
        {"cli", "ip route add default via 192.168.50.1"},
        {"cli", "ip -6 route add default via 2001:db8:50::1"},
        {"box", "ip link set lo up"},
        {"box", "ip link set boxc up"},
        {"box", "ip link set boxs up"},
        {"box", "ip addr add 192.168.50.1/24 dev boxc"},
        {"box", "ip addr add 2001:db8:50::1/64 dev boxc nodad"},
        {"box", "ip addr add 100.64.0.2/24 dev boxs"},
        {"box", "ip addr add 2001:db8:100::2/64 dev boxs nodad"},
        {"box", "ip route add default via 100.64.0.1"},
        {"box", "ip -6 route add default via 2001:db8:100::1"},
        {"box", "sysctl -qw net.ipv4.ip_forward=0"},
        {"box", "sysctl -qw net.ipv6.conf.all.forwarding=0"},
        {"srv", "ip link set lo up"},
        {"srv", "ip link set srv0 up"},
        {"srv", "ip addr add 100.64.0.1/24 dev srv0"},
        {"srv", "ip addr add 203.0.113.10/32 dev lo"},
        {"srv", "ip addr add 2001:db8:100::1/64 dev srv0 nodad"},
        {"srv", "ip addr add 2001:db8:ffff::10/128 dev lo"},
        {"srv", "ip -6 route add 2001:db8:50::/64 via 2001:db8:100::2"},
    };
    for (const auto& [where, cmd] : setup) {
      const std::string ns = where[0] == 'c' ? kCli : where[0] == 'b' ? kBox : kSrv;
      ASSERT_TRUE(sh(in(ns, cmd))) << where << ": " << cmd;
    }
    // The modem's MTU everywhere, so that TCP's segments fit the lab topology's modem port.
    for (const auto& [ns, dev] : {std::pair{kCli, "cli0"}, std::pair{kBox, "boxc"},
                                  std::pair{kBox, "boxs"}, std::pair{kSrv, "srv0"}})
      ASSERT_TRUE(sh(in(ns, std::string("ip link set mtu ") + mtu + " dev " + dev)));
    // Receivers verify every checksum themselves.
    ASSERT_TRUE(sh(in(kCli, "ethtool -K cli0 rx off")));
    ASSERT_TRUE(sh(in(kSrv, "ethtool -K srv0 rx off")));
    // Neighbours on both links resolved before any exchange: the first IPv6 datagram of a test
    // was now and then lost while a just-created link still ran its neighbour discovery.
    ASSERT_TRUE(sh(in(kCli, "ping -6 -c1 -w5 -q 2001:db8:50::1 >/dev/null")));
    ASSERT_TRUE(sh(in(kSrv, "ping -6 -c1 -w5 -q 2001:db8:100::2 >/dev/null")));
    ASSERT_TRUE(sh(in(kCli, "ping -4 -c1 -w5 -q 192.168.50.1 >/dev/null")));
    ASSERT_TRUE(sh(in(kSrv, "ping -4 -c1 -w5 -q 100.64.0.2 >/dev/null")));

    box_ = std::make_unique<EnterNetns>(kBox);
    ASSERT_TRUE(box_->ok());
    std::string error;
    fp_ = BpfFastPath::create(opts_, error);
    // Pinned, a refusal is the test's failure, unless the programs do not load here at all.
    if (!fp_ && !opts_.pin_dir.empty() && BpfFastPath::create(BpfOptions{1024, 64}, error))
      FAIL() << "pinned: " << error;
    if (!fp_) GTEST_SKIP() << "BPF unavailable: " << error;
  }

  void TearDown() override {
    if (server_ > 0) {
      kill(-server_, SIGKILL);
      waitpid(server_, nullptr, 0);
    }
    fp_.reset();  // detaches, inside the box
    box_.reset();
    delete_namespaces();
  }

  // Ports on the box's veths, the lab topology, the flows, the engine on the hooks asked for.
  void start(BpfFastPath::Hook wifi, BpfFastPath::Hook modem) {
    ASSERT_EQ(0, fp_->set_port_device(kModem, static_cast<int>(if_nametoindex("boxs")), false));
    ASSERT_EQ(0, fp_->set_port_device(kWifi, static_cast<int>(if_nametoindex("boxc")), false));
    install_lab_topology(*fp_);
    ASSERT_EQ(0, add_masquerade4(*fp_, 17, kWifiClient, 40000, kServer, kUdp, 61000));
    ASSERT_EQ(0, add_masquerade4(*fp_, 6, kWifiClient, 40001, kServer, kTcp, 61001));
    ASSERT_EQ(0, add_route6(*fp_, 17, kWifiClient6, 40000, kServer6, kUdp));
    ASSERT_EQ(0, add_route6(*fp_, 6, kWifiClient6, 40001, kServer6, kTcp));
    for (uint8_t port : {kModem, kWifi}) {
      std::string error;
      ASSERT_TRUE(fp_->attach(port, port == kWifi ? wifi : modem, error)) << error;
      std::printf("port %u: %s\n", port, fp_->attach_note(port).c_str());
    }
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      setpgid(0, 0);
      execlp("ip", "ip", "netns", "exec", kSrv.c_str(), "python3", kTraffic.c_str(), "serve",
             kServer.c_str(), kServer6.c_str(), std::to_string(kUdp).c_str(),
             std::to_string(kTcp).c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    server_ = pid;
    // Listening once its UDP socket is bound.
    for (int i = 0; i < 50 && !sh(in(kSrv, "ss -lun | grep -q ':5000'")); ++i) usleep(100000);
  }

  // The kernel's TCP handling for what the engine leaves to it (SYN, FIN, RST): forwarding on,
  // conntrack + SNAT to the flow's mapped port, and a filter that forwards nothing else.
  void kernel_tcp_control() {
    ASSERT_TRUE(sh(in(kBox, "sysctl -qw net.ipv4.ip_forward=1")));
    ASSERT_TRUE(sh(in(kBox, "sysctl -qw net.ipv6.conf.all.forwarding=1")));
    sh(in(kBox, "sysctl -qw net.netfilter.nf_conntrack_tcp_be_liberal=1"));
    const std::string rules =
        "table inet tpbt {\n"
        " chain tcp_control { type filter hook forward priority 0; policy drop;\n"
        "  tcp flags & (syn | fin | rst) != 0 accept; }\n"
        " chain nat_out { type nat hook postrouting priority 100;\n"
        "  oifname boxs ip saddr 192.168.50.10 tcp sport 40001 snat ip to 100.64.0.2:61001; }\n"
        "}\n";
    ASSERT_TRUE(sh("printf '" + rules + "' | " + in(kBox, "nft -f -")));
  }

  // From the client's port of the installed flow unless `cport` says otherwise.
  void exchange(const std::string& proto, const std::string& src, const std::string& dst,
                int amount, int cport = 0) {
    std::string out;
    const uint16_t port = proto == "udp" ? kUdp : kTcp;
    if (!cport) cport = proto == "udp" ? 40000 : 40001;
    const int rc = run(in(kCli, "timeout 60 python3 " + kTraffic + " " + proto + " " + src + " " +
                                    std::to_string(cport) + " " + dst + " " + std::to_string(port) +
                                    " " + std::to_string(amount)),
                       out);
    EXPECT_EQ(rc, 0) << proto << " " << src << " -> " << dst << ": " << out;
    std::printf("%s", out.c_str());
  }

  void all_traffic() {
    const PortCounts w0 = fp_->port_counts(kWifi), m0 = fp_->port_counts(kModem);
    exchange("udp", kWifiClient, kServer, 200);
    exchange("udp", kWifiClient6, kServer6, 200);
    const PortCounts w1 = fp_->port_counts(kWifi), m1 = fp_->port_counts(kModem);
    // Forwarding is off: every datagram crossed by the engine.
    EXPECT_GE(w1.fwd_rx_packets - w0.fwd_rx_packets, 400u);
    EXPECT_GE(m1.fwd_rx_packets - m0.fwd_rx_packets, 400u);
    kernel_tcp_control();
    constexpr int kBytes = 4 << 20;
    exchange("tcp", kWifiClient, kServer, kBytes);
    exchange("tcp", kWifiClient6, kServer6, kBytes);
    const PortCounts w2 = fp_->port_counts(kWifi), m2 = fp_->port_counts(kModem);
    // Every byte but a last segment's: one that carries the FIN goes through the kernel, and with
    // TSO it may hold up to 64 KiB.
    constexpr uint64_t kFinSegment = 64 << 10;
    EXPECT_GE(w2.fwd_rx_bytes - w1.fwd_rx_bytes, 2u * (kBytes - kFinSegment));
    EXPECT_GE(m2.fwd_rx_bytes - m1.fwd_rx_bytes, 2u * (kBytes - kFinSegment));
    std::string snmp;
    run(in(kSrv, "nstat -az Udp6InCsumErrors UdpInCsumErrors TcpInCsumErrors"), snmp);
    std::printf("server's checksum error counters:\n%s", snmp.c_str());
    EXPECT_EQ(fp_->reasons()[static_cast<size_t>(Reason::rewrite_failed)], 0u);
  }

  BpfOptions opts_{1024, 64};
  // Data limits count the fast path and the kernel's path alike, each packet once per port: a UDP
  // exchange over the installed IPv4 flow (forwarded by the engine both ways), then the same from
  // a client port with no flow, which the engine hands to the kernel (forwarding on, masquerade)
  // and the kernel sends out of the modem, where tp_tc_egress sees it. IPv6 is off on the modem
  // link, so that nothing else IP crosses it (ARP is not IP, and not charged).
  void limit_counts_both_paths(BpfFastPath::Hook hook) {
    ASSERT_TRUE(sh(in(kBox, "sysctl -qw net.ipv6.conf.boxs.disable_ipv6=1")));
    ASSERT_TRUE(sh(in(kSrv, "sysctl -qw net.ipv6.conf.srv0.disable_ipv6=1")));
    start(hook, hook);
    std::string error;
    ASSERT_TRUE(fp_->attach_egress(kModem, error)) << error;
    constexpr int kCount = 100;
    uint64_t bytes = 0;  // traffic.py's datagrams, IP bytes one way
    for (int i = 0; i < kCount; ++i) bytes += 16 + (i * 37) % 1300 + 8 + 20;

    fp_->arm_limit(kModem, uint64_t{1} << 40, 0);
    const PortCounts m0 = fp_->port_counts(kModem);
    exchange("udp", kWifiClient, kServer, kCount);
    const PortCounts m1 = fp_->port_counts(kModem);
    EXPECT_EQ(m1.fwd_rx_bytes - m0.fwd_rx_bytes, bytes) << "not every reply crossed the engine";
    EXPECT_EQ(m1.fwd_tx_bytes - m0.fwd_tx_bytes, bytes) << "not every request crossed the engine";
    EXPECT_EQ(fp_->limit_used(kModem), 2 * bytes) << "the fast path's packets, once each";
    // The uplink's statistics: what arrived, and nothing the kernel sent (tc's redirects pass the
    // egress program too, and are not the kernel's).
    EXPECT_EQ(m1.rx_ip_bytes - m0.rx_ip_bytes, bytes);
    EXPECT_EQ(m1.kernel_tx_bytes - m0.kernel_tx_bytes, 0u);
    EXPECT_EQ(m1.kernel_tx_packets - m0.kernel_tx_packets, 0u);

    ASSERT_TRUE(sh(in(kBox, "sysctl -qw net.ipv4.ip_forward=1")));
    ASSERT_TRUE(
        sh("printf 'table ip tpbt_nat {\n chain post { type nat hook postrouting priority "
           "100; oifname boxs masquerade; }\n}\n' | " +
           in(kBox, "nft -f -")));
    fp_->arm_limit(kModem, uint64_t{1} << 40, 0);
    exchange("udp", kWifiClient, kServer, kCount, 40002);
    const PortCounts m2 = fp_->port_counts(kModem);
    EXPECT_EQ(m2.fwd_rx_bytes - m1.fwd_rx_bytes, 0u) << "the engine carried the kernel's flow";
    EXPECT_EQ(m2.fwd_tx_bytes - m1.fwd_tx_bytes, 0u) << "the engine carried the kernel's flow";
    EXPECT_EQ(fp_->limit_used(kModem), 2 * bytes) << "the kernel's path, both ways";
    EXPECT_EQ(m2.rx_ip_bytes - m1.rx_ip_bytes, bytes) << "the replies, punted, still counted";
    EXPECT_EQ(m2.kernel_tx_bytes - m1.kernel_tx_bytes, bytes) << "the requests, by the kernel";
    EXPECT_EQ(m2.kernel_tx_packets - m1.kernel_tx_packets, uint64_t{kCount});
  }

  std::unique_ptr<EnterNetns> box_;
  std::unique_ptr<BpfFastPath> fp_;
  pid_t server_ = -1;
};

// Full checksums in the packets (senders compute them): the engine's incremental updates.
TEST_F(BpfTrafficTest, TcCarriesUdpAndTcp) {
  ASSERT_TRUE(sh(in(kCli, "ethtool -K cli0 tx off")));
  ASSERT_TRUE(sh(in(kSrv, "ethtool -K srv0 tx off")));
  start(BpfFastPath::Hook::tc, BpfFastPath::Hook::tc);
  EXPECT_EQ(fp_->attached_hook(kWifi), BpfFastPath::Hook::tc);
  all_traffic();
}

// The senders leave the checksums to "hardware" (veth tx offload): their skbs reach the box as
// CHECKSUM_PARTIAL, holding only the pseudo-header sum, which the engine must move with the
// address; the box's egress completes them in software (tx offload off there), and the receivers
// verify them.
TEST_F(BpfTrafficTest, TcKeepsChecksumPartialRight) {
  ASSERT_TRUE(sh(in(kCli, "ethtool -K cli0 tx on")));
  ASSERT_TRUE(sh(in(kSrv, "ethtool -K srv0 tx on")));
  ASSERT_TRUE(sh(in(kBox, "ethtool -K boxc tx off")));
  ASSERT_TRUE(sh(in(kBox, "ethtool -K boxs tx off")));
  start(BpfFastPath::Hook::tc, BpfFastPath::Hook::tc);
  all_traffic();
}

// XDP, with GRO on the peers so that the box's veths take redirected frames; full checksums (an
// XDP frame carries no checksum offload state).
TEST_F(BpfTrafficTest, XdpCarriesUdpAndTcp) {
  if (fp_->prog_fd(BpfFastPath::Hook::xdp) < 0) GTEST_SKIP() << fp_->xdp_unavailable();
  ASSERT_TRUE(sh(in(kCli, "ethtool -K cli0 tx off gro on")));
  ASSERT_TRUE(sh(in(kSrv, "ethtool -K srv0 tx off gro on")));
  start(BpfFastPath::Hook::xdp, BpfFastPath::Hook::xdp);
  EXPECT_EQ(fp_->attached_hook(kWifi), BpfFastPath::Hook::xdp) << fp_->attach_note(kWifi);
  EXPECT_EQ(fp_->attached_hook(kModem), BpfFastPath::Hook::xdp) << fp_->attach_note(kModem);
  all_traffic();
}

TEST_F(BpfTrafficTest, TcDataLimitCountsBothPathsOnce) {
  ASSERT_TRUE(sh(in(kCli, "ethtool -K cli0 tx off")));
  ASSERT_TRUE(sh(in(kSrv, "ethtool -K srv0 tx off")));
  limit_counts_both_paths(BpfFastPath::Hook::tc);
}

// XDP charges the egress port when it redirects (the frame passes no tc egress program).
TEST_F(BpfTrafficTest, XdpDataLimitCountsBothPathsOnce) {
  if (fp_->prog_fd(BpfFastPath::Hook::xdp) < 0) GTEST_SKIP() << fp_->xdp_unavailable();
  ASSERT_TRUE(sh(in(kCli, "ethtool -K cli0 tx off gro on")));
  ASSERT_TRUE(sh(in(kSrv, "ethtool -K srv0 tx off gro on")));
  limit_counts_both_paths(BpfFastPath::Hook::xdp);
  EXPECT_EQ(fp_->attached_hook(kModem), BpfFastPath::Hook::xdp) << fp_->attach_note(kModem);
}

// XDP asked for on the modem, whose peer (the server's veth) runs no GRO: the modem's veth cannot
// take redirected frames, so the port gets tc and says so, and traffic flows both ways.
TEST_F(BpfTrafficTest, XdpFallsBackToTcWithoutGro) {
  if (fp_->prog_fd(BpfFastPath::Hook::xdp) < 0) GTEST_SKIP() << fp_->xdp_unavailable();
  ASSERT_TRUE(sh(in(kCli, "ethtool -K cli0 tx off")));
  ASSERT_TRUE(sh(in(kSrv, "ethtool -K srv0 tx off gro off")));
  start(BpfFastPath::Hook::tc, BpfFastPath::Hook::xdp);
  EXPECT_EQ(fp_->attached_hook(kModem), BpfFastPath::Hook::tc) << fp_->attach_note(kModem);
  EXPECT_NE(fp_->attach_note(kModem).find("tc used"), std::string::npos)
      << fp_->attach_note(kModem);
  const PortCounts m0 = fp_->port_counts(kModem);
  exchange("udp", kWifiClient, kServer, 50);
  exchange("udp", kWifiClient6, kServer6, 50);
  EXPECT_GE(fp_->port_counts(kModem).fwd_rx_packets - m0.fwd_rx_packets, 100u);
}

// A BPF filesystem of the test's own, on a fresh directory: unmounted (with every pin in it) and
// removed when the test ends, whatever happened.
class BpffsMount {
 public:
  BpffsMount() {
    char dir[] = "/tmp/tp-bpffs-XXXXXX";
    if (!mkdtemp(dir)) return;
    dir_ = dir;
    mounted_ = mount("bpf", dir, "bpf", 0, nullptr) == 0;
  }
  ~BpffsMount() {
    if (mounted_) umount2(dir_.c_str(), MNT_DETACH);
    if (!dir_.empty()) rmdir(dir_.c_str());
  }
  BpffsMount(const BpffsMount&) = delete;
  BpffsMount& operator=(const BpffsMount&) = delete;
  bool ok() const { return mounted_; }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  bool mounted_ = false;
};

bool exists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

// The engine with its state pinned, as the daemon runs it: later instances on the same pins stand
// for a restarted (or crashed and restarted) daemon. The box forwards nothing itself, so a datagram
// that misses the fast path is lost.
class BpfPinningTest : public BpfTrafficTest {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (bpffs, network namespaces, BPF programs)";
    bpffs_ = std::make_unique<BpffsMount>();
    ASSERT_TRUE(bpffs_->ok()) << "cannot mount a bpffs";
    opts_.pin_dir = BpfFastPath::pin_dir_for(bpffs_->dir());
    BpfTrafficTest::SetUp();
  }
  void TearDown() override {
    later_.reset();  // pinned: leaves the programs attached, gone with the namespaces
    BpfTrafficTest::TearDown();
    bpffs_.reset();
  }

  // A new instance on the pins, its ports on the same devices, as a restarted daemon does.
  std::unique_ptr<BpfFastPath> restart() {
    std::string error;
    auto fp = BpfFastPath::create(opts_, error);
    EXPECT_TRUE(fp) << error;
    if (!fp) return fp;
    EXPECT_TRUE(fp->reused());
    EXPECT_EQ(0, fp->set_port_device(kModem, static_cast<int>(if_nametoindex("boxs")), false));
    EXPECT_EQ(0, fp->set_port_device(kWifi, static_cast<int>(if_nametoindex("boxc")), false));
    return fp;
  }

  // Datagrams there and back for `seconds` while `during` runs; all must come back.
  void flood_while(const std::string& src, const std::string& dst, double seconds,
                   const std::function<void()>& during) {
    const std::string cmd =
        in(kCli, "timeout 60 python3 " + kTraffic + " flood " + src + " 40000 " + dst + " " +
                     std::to_string(kUdp) + " " + std::to_string(seconds) + " 2>&1");
    FILE* f = popen(cmd.c_str(), "r");
    ASSERT_TRUE(f);
    const uint32_t start = fp_->clock_ms();
    during();
    const uint32_t took = fp_->clock_ms() - start;
    std::string out;
    char buf[512];
    while (fgets(buf, sizeof(buf), f)) out += buf;
    const int st = pclose(f);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << out;
    EXPECT_LT(took, seconds * 1000) << "the replacements outlasted the flood";
    std::printf("%s(replacements took %u ms)\n", out.c_str(), took);
  }

  // 20 restarts under a flood: each new instance takes the pins over, attaches over the running
  // programs, and the one before goes (pinned, it leaves them attached).
  void replace_repeatedly(BpfFastPath::Hook hook, const std::string& mode) {
    constexpr int kRestarts = 20;
    // 20 restarts take 4 to 8 s on 2 cores next to the flood's sender: the flood outlasts them.
    flood_while(kWifiClient, kServer, 15, [&] {
      for (int i = 0; i < kRestarts; ++i) {
        later_ = restart();
        ASSERT_TRUE(later_);
        for (uint8_t port : {kModem, kWifi}) {
          std::string error;
          const uint32_t before = later_->prog_id(port);
          ASSERT_TRUE(later_->attach(port, hook, error)) << error;
          ASSERT_EQ(later_->attach_mode(port), mode) << later_->attach_note(port);
          ASSERT_NE(later_->attach_note(port).find("same build"), std::string::npos)
              << later_->attach_note(port);
          EXPECT_NE(later_->prog_id(port), before);
        }
        std::swap(fp_, later_);
        later_.reset();
      }
    });
    EXPECT_EQ(fp_->inherited(), 8u);
  }

  std::unique_ptr<BpffsMount> bpffs_;
  std::unique_ptr<BpfFastPath> later_;
};

// A crash (the instance goes without unpinning or detaching) leaves the programs forwarding; the
// next run takes the flows over, overwrites what it installs again, and drops the rest, whose
// traffic then goes to the kernel.
TEST_F(BpfPinningTest, NextRunTakesOverTheFlows) {
  ASSERT_TRUE(sh(in(kCli, "ethtool -K cli0 tx off")));
  ASSERT_TRUE(sh(in(kSrv, "ethtool -K srv0 tx off")));
  EXPECT_FALSE(fp_->reused());
  start(BpfFastPath::Hook::tc, BpfFastPath::Hook::tc);
  for (const char* pin : {"tp_flows4", "tp_flows6", "tp_rules6", "tp_config", "tp_ports",
                          "tp_nexthops", "prog_tp_tc_ether", "prog_tp_tc_rawip"})
    EXPECT_TRUE(exists(opts_.pin_dir + "/" + pin)) << pin;
  EXPECT_EQ(exists(opts_.pin_dir + "/prog_tp_xdp"), fp_->prog_fd(BpfFastPath::Hook::xdp) >= 0);
  const uint32_t first_id = fp_->prog_id(kWifi);
  EXPECT_NE(first_id, 0u);
  EXPECT_EQ(fp_->attach_mode(kWifi), "tc clsact ingress");
  const Topology topology = fp_->topology();

  fp_.reset();  // the crash
  exchange("udp", kWifiClient, kServer, 50);
  exchange("udp", kWifiClient6, kServer6, 50);

  fp_ = restart();
  ASSERT_TRUE(fp_);
  EXPECT_EQ(fp_->inherited(), 8u);  // four flows, two directions each
  // The published topology came back whole.
  const Topology back = fp_->topology();
  for (uint8_t p : {kModem, kWifi}) {
    EXPECT_EQ(back.ports[p].enabled, topology.ports[p].enabled);
    EXPECT_EQ(back.ports[p].mac, topology.ports[p].mac);
    EXPECT_EQ(back.ports[p].mtu, topology.ports[p].mtu);
    EXPECT_EQ(back.ports[p].local4, topology.ports[p].local4);
  }
  EXPECT_EQ(0, std::memcmp(back.nexthops.data(), topology.nexthops.data(), sizeof(back.nexthops)));
  // Stating the topology again changes nothing the programs see.
  install_lab_topology(*fp_);
  exchange("udp", kWifiClient, kServer, 50);
  for (uint8_t port : {kModem, kWifi}) {
    std::string error;
    ASSERT_TRUE(fp_->attach(port, BpfFastPath::Hook::tc, error)) << error;
    EXPECT_NE(fp_->attach_note(port).find("same build"), std::string::npos)
        << fp_->attach_note(port);
  }
  // This instance's load of the same build now sits in the filter.
  EXPECT_NE(fp_->prog_id(kWifi), first_id);
  EXPECT_NE(fp_->prog_id(kWifi), 0u);
  // The daemon's dump: the UDP flows again (overwritten in place), the TCP ones are gone.
  ASSERT_EQ(0, add_masquerade4(*fp_, 17, kWifiClient, 40000, kServer, kUdp, 61000));
  EXPECT_EQ(-EEXIST, add_masquerade4(*fp_, 17, kWifiClient, 40000, kServer, kUdp, 61000));
  EXPECT_EQ(fp_->inherited(), 6u);
  EXPECT_EQ(fp_->drop_inherited(), 6u);
  EXPECT_EQ(fp_->inherited(), 0u);
  exchange("udp", kWifiClient, kServer, 50);
  // The dropped IPv6 flow's datagrams reach the kernel, which forwards them once allowed to.
  ASSERT_TRUE(sh(in(kBox, "sysctl -qw net.ipv6.conf.all.forwarding=1")));
  const PortCounts w0 = fp_->port_counts(kWifi);
  exchange("udp", kWifiClient6, kServer6, 50);
  const PortCounts w1 = fp_->port_counts(kWifi);
  EXPECT_EQ(w1.fwd_rx_packets, w0.fwd_rx_packets);
  EXPECT_GE(w1.punted - w0.punted, 50u);
}

// A restarted daemon's programs replace the running ones on every port while traffic flows: the
// kernel swaps them in one step (tc: the same filter with the replace flag; XDP:
// XDP_FLAGS_REPLACE), so not one datagram misses the fast path (the box would drop it).
TEST_F(BpfPinningTest, TcReplacedUnderLoadLosesNothing) {
  ASSERT_TRUE(sh(in(kCli, "ethtool -K cli0 tx off")));
  ASSERT_TRUE(sh(in(kSrv, "ethtool -K srv0 tx off")));
  start(BpfFastPath::Hook::tc, BpfFastPath::Hook::tc);
  replace_repeatedly(BpfFastPath::Hook::tc, "tc clsact ingress");
}

TEST_F(BpfPinningTest, XdpReplacedUnderLoadLosesNothing) {
  if (fp_->prog_fd(BpfFastPath::Hook::xdp) < 0) GTEST_SKIP() << fp_->xdp_unavailable();
  ASSERT_TRUE(sh(in(kCli, "ethtool -K cli0 tx off gro on")));
  ASSERT_TRUE(sh(in(kSrv, "ethtool -K srv0 tx off gro on")));
  start(BpfFastPath::Hook::xdp, BpfFastPath::Hook::xdp);
  ASSERT_EQ(fp_->attached_hook(kWifi), BpfFastPath::Hook::xdp) << fp_->attach_note(kWifi);
  ASSERT_EQ(fp_->attached_hook(kModem), BpfFastPath::Hook::xdp) << fp_->attach_note(kModem);
  replace_repeatedly(BpfFastPath::Hook::xdp, "xdp native");
}

// A different program in the engine's tc slot (standing for an older build: another tag) is
// replaced the same way, and the note says so; moving a port from tc to XDP and back leaves the
// device with one of ours at every moment and with exactly one at the end.
TEST_F(BpfPinningTest, ReplacingAnotherBuildAndSwitchingHooks) {
  ASSERT_TRUE(sh(in(kCli, "ethtool -K cli0 tx off gro on")));
  ASSERT_TRUE(sh(in(kSrv, "ethtool -K srv0 tx off gro on")));
  start(BpfFastPath::Hook::tc_rawip, BpfFastPath::Hook::tc);
  std::string error;
  ASSERT_TRUE(fp_->attach(kWifi, BpfFastPath::Hook::tc, error)) << error;
  EXPECT_NE(fp_->attach_note(kWifi).find("another build"), std::string::npos)
      << fp_->attach_note(kWifi);
  exchange("udp", kWifiClient, kServer, 50);
  if (fp_->prog_fd(BpfFastPath::Hook::xdp) < 0) return;
  auto tc_filters = [&] { return sh(in(kBox, "tc filter show dev boxc ingress | grep -q bpf")); };
  auto xdp_on = [&] { return sh(in(kBox, "ip link show dev boxc | grep -q 'xdp'")); };
  flood_while(kWifiClient, kServer, 4, [&] {
    ASSERT_TRUE(fp_->attach(kWifi, BpfFastPath::Hook::xdp, error)) << error;
    ASSERT_EQ(fp_->attached_hook(kWifi), BpfFastPath::Hook::xdp) << fp_->attach_note(kWifi);
    EXPECT_TRUE(xdp_on());
    EXPECT_FALSE(tc_filters());
    ASSERT_TRUE(fp_->attach(kWifi, BpfFastPath::Hook::tc, error)) << error;
    EXPECT_FALSE(xdp_on());
    EXPECT_TRUE(tc_filters());
  });
}

// Pins: unpin() removes the instance's directory; another layout version's directory is found
// and removed; a pin root that is not bpffs is refused, saying how to mount one.
TEST_F(BpfPinningTest, PinDirectories) {
  const std::string root = bpffs_->dir();
  EXPECT_EQ(opts_.pin_dir, root + "/tetherpath/v" + std::to_string(BpfFastPath::kLayoutVersion));
  EXPECT_TRUE(exists(opts_.pin_dir + "/tp_flows4"));
  EXPECT_TRUE(BpfFastPath::stale_pin_dirs(root).empty());
  // An older layout's directory with a pinned map in it.
  const std::string old = root + "/tetherpath/v" + std::to_string(BpfFastPath::kLayoutVersion + 7);
  ASSERT_EQ(0, mkdir(old.c_str(), 0700));
  const int map = bpf_map_create(BPF_MAP_TYPE_ARRAY, "tp_old", 4, 8, 1, nullptr);
  ASSERT_GE(map, 0);
  ASSERT_EQ(0, bpf_obj_pin(map, (old + "/tp_flows4").c_str()));
  close(map);
  ASSERT_EQ(BpfFastPath::stale_pin_dirs(root), std::vector<std::string>{old});
  EXPECT_EQ(0, BpfFastPath::remove_pin_dir(old));
  EXPECT_FALSE(exists(old));
  EXPECT_TRUE(BpfFastPath::stale_pin_dirs(root).empty());

  fp_->unpin();
  EXPECT_FALSE(exists(opts_.pin_dir));
  EXPECT_FALSE(exists(root + "/tetherpath"));

  // Not bpffs: nothing is made there.
  char dir[] = "/tmp/tp-notbpffs-XXXXXX";
  ASSERT_TRUE(mkdtemp(dir));
  BpfOptions opts = opts_;
  opts.pin_dir = BpfFastPath::pin_dir_for(dir);
  std::string error;
  EXPECT_FALSE(BpfFastPath::create(opts, error));
  EXPECT_NE(error.find("mount -t bpf bpf /sys/fs/bpf"), std::string::npos) << error;
  EXPECT_FALSE(exists(std::string(dir) + "/tetherpath"));
  rmdir(dir);
}

}  // namespace
}  // namespace tp::test
