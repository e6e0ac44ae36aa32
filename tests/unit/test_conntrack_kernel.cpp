// The conntrack mirror and writer against the real kernel, in a network namespace of their own
// (root only; skipped elsewhere): the reply tuple's ICMP identifier read from the message, our own
// updates filtered out of the event stream, and no event older than a resync applied after it.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <sched.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <thread>

#include "conntrack_mirror.hpp"
#include "conntrack_writer.hpp"

namespace tp {
namespace {

// Creates and deletes kernel conntrack entries by hand-built ctnetlink messages: the reply tuple
// can then differ from the original's inverse the way NAT makes it (libnetfilter_conntrack cannot
// set a reply-direction ICMP id).
class KernelConntrack {
 public:
  KernelConntrack() {
    nl_ = mnl_socket_open(NETLINK_NETFILTER);
    if (nl_) mnl_socket_bind(nl_, 0, MNL_SOCKET_AUTOPID);
  }
  ~KernelConntrack() {
    if (nl_) mnl_socket_close(nl_);
  }
  struct Tuple {
    const char *src, *dst;
    uint8_t proto;
    uint16_t sport, dport;  // ICMP: id, type
  };
  // Addresses with a ':' make an IPv6 entry.
  int create(const Tuple& orig, const Tuple& reply, uint32_t timeout = 120, uint32_t mark = 0) {
    return send(IPCTNL_MSG_CT_NEW, NLM_F_CREATE | NLM_F_EXCL, family_of(orig), [&](nlmsghdr* nlh) {
      put_tuple(nlh, CTA_TUPLE_ORIG, orig);
      put_tuple(nlh, CTA_TUPLE_REPLY, reply);
      mnl_attr_put_u32(nlh, CTA_TIMEOUT, htonl(timeout));
      if (mark) mnl_attr_put_u32(nlh, CTA_MARK, htonl(mark));
    });
  }
  int remove(const Tuple& orig) {
    return send(IPCTNL_MSG_CT_DELETE, 0, family_of(orig),
                [&](nlmsghdr* nlh) { put_tuple(nlh, CTA_TUPLE_ORIG, orig); });
  }
  bool ok() const { return nl_ != nullptr; }

 private:
  static uint8_t family_of(const Tuple& t) { return std::strchr(t.src, ':') ? AF_INET6 : AF_INET; }
  static void put_tuple(nlmsghdr* nlh, uint16_t type, const Tuple& t) {
    nlattr* tuple = mnl_attr_nest_start(nlh, type);
    nlattr* ip = mnl_attr_nest_start(nlh, CTA_TUPLE_IP);
    if (family_of(t) == AF_INET6) {
      in6_addr a{};
      inet_pton(AF_INET6, t.src, &a);
      mnl_attr_put(nlh, CTA_IP_V6_SRC, sizeof a, &a);
      inet_pton(AF_INET6, t.dst, &a);
      mnl_attr_put(nlh, CTA_IP_V6_DST, sizeof a, &a);
    } else {
      mnl_attr_put_u32(nlh, CTA_IP_V4_SRC, inet_addr(t.src));
      mnl_attr_put_u32(nlh, CTA_IP_V4_DST, inet_addr(t.dst));
    }
    mnl_attr_nest_end(nlh, ip);
    nlattr* proto = mnl_attr_nest_start(nlh, CTA_TUPLE_PROTO);
    mnl_attr_put_u8(nlh, CTA_PROTO_NUM, t.proto);
    if (t.proto == IPPROTO_ICMP) {
      mnl_attr_put_u16(nlh, CTA_PROTO_ICMP_ID, htons(t.sport));
      mnl_attr_put_u8(nlh, CTA_PROTO_ICMP_TYPE, static_cast<uint8_t>(t.dport));
      mnl_attr_put_u8(nlh, CTA_PROTO_ICMP_CODE, 0);
    } else {
      mnl_attr_put_u16(nlh, CTA_PROTO_SRC_PORT, htons(t.sport));
      mnl_attr_put_u16(nlh, CTA_PROTO_DST_PORT, htons(t.dport));
    }
    mnl_attr_nest_end(nlh, proto);
    mnl_attr_nest_end(nlh, tuple);
  }
  int send(uint8_t msg, uint16_t flags, uint8_t family,
           const std::function<void(nlmsghdr*)>& fill) {
    char buf[8192];
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | msg;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
    nlh->nlmsg_seq = ++seq_;
    auto* nfh = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
    nfh->nfgen_family = family;
    nfh->version = NFNETLINK_V0;
    fill(nlh);
    if (mnl_socket_sendto(nl_, nlh, nlh->nlmsg_len) < 0) return -errno;
    const ssize_t n = mnl_socket_recvfrom(nl_, buf, sizeof buf);
    if (n < 0) return -errno;
    return mnl_cb_run(buf, static_cast<size_t>(n), seq_, mnl_socket_get_portid(nl_), nullptr,
                      nullptr) < 0
               ? -errno
               : 0;
  }
  mnl_socket* nl_ = nullptr;
  uint32_t seq_ = 0;
};

// Runs `body` on a thread in a new network namespace (its sockets and /proc/sys/net are that
// namespace's; it vanishes with the thread), with conntrack events always on.
void in_new_netns(const std::function<void()>& body) {
  std::thread t([&] {
    if (unshare(CLONE_NEWNET) != 0) {
      ADD_FAILURE() << "unshare(CLONE_NEWNET): " << std::strerror(errno);
      return;
    }
    std::ofstream("/proc/sys/net/netfilter/nf_conntrack_events") << "1\n";
    body();
  });
  t.join();
}

bool can_run() {
  if (geteuid() != 0) return false;
  KernelConntrack probe;
  return probe.ok();
}

// The mirror's view as a set of original tuples (src id/port), kept like the flow manager keeps
// flows: upserts add, destroys remove, a resync purges what its dump did not show.
struct View {
  std::map<uint16_t, CtEntry> live;  // by original source port / ICMP id (host order)
  std::set<uint16_t> seen;
  ConntrackMirror::Sink sink() {
    return {[this](const CtEntry& e) {
              live[ntohs(e.orig.sport)] = e;
              seen.insert(ntohs(e.orig.sport));
            },
            [this](const CtEntry& e) { live.erase(ntohs(e.orig.sport)); },
            [this] { seen.clear(); },
            [this] {
              for (auto it = live.begin(); it != live.end();)
                it = seen.count(it->first) ? std::next(it) : live.erase(it);
            },
            {}};
  }
};

TEST(ConntrackKernel, ReplyIcmpIdIsReadFromTheMessage) {
  if (!can_run()) GTEST_SKIP() << "needs root and nf_conntrack_netlink";
  in_new_netns([] {
    KernelConntrack k;
    // Two clients pinged 203.0.113.10 with identifier 1; NAT remapped the second one's to 2.
    ASSERT_EQ(k.create({"192.168.50.10", "203.0.113.10", IPPROTO_ICMP, 1, 8},
                       {"203.0.113.10", "100.64.0.2", IPPROTO_ICMP, 1, 0}),
              0);
    ASSERT_EQ(k.create({"192.168.60.10", "203.0.113.10", IPPROTO_ICMP, 1, 8},
                       {"203.0.113.10", "100.64.0.2", IPPROTO_ICMP, 2, 0}),
              0);
    std::vector<CtEntry> got;
    ConntrackMirror m({[&](const CtEntry& e) { got.push_back(e); }, {}, {}, {}, {}}, 1 << 16,
                      1 << 16);
    ASSERT_TRUE(m.resync());
    ASSERT_EQ(got.size(), 2u);
    std::map<std::string, uint16_t> reply_id;
    for (const auto& e : got) reply_id[e.orig.src.str()] = ntohs(e.reply.sport);
    EXPECT_EQ(reply_id["192.168.50.10"], 1);
    EXPECT_EQ(reply_id["192.168.60.10"], 2) << "the NAT's remapped identifier";
    for (const auto& e : got) EXPECT_GT(e.timeout, 0u);
  });
}

TEST(ConntrackKernel, OurOwnUpdatesDoNotComeBackAsEvents) {
  if (!can_run()) GTEST_SKIP() << "needs root and nf_conntrack_netlink";
  in_new_netns([] {
    View v;
    ConntrackMirror m(v.sink(), 1 << 20, 1 << 20);
    ConntrackWriter w;
    KernelConntrack k;
    ASSERT_EQ(k.create({"192.168.50.10", "203.0.113.10", IPPROTO_UDP, 5000, 53},
                       {"203.0.113.10", "100.64.0.2", IPPROTO_UDP, 53, 5000}),
              0);
    m.on_readable();
    const uint64_t before = m.events;
    ASSERT_EQ(before, 1u);  // the NEW event
    ASSERT_EQ(v.live.size(), 1u);
    m.ignore_events_from(w.portid());
    std::vector<ConntrackWriter::Update> updates(100, {v.live.begin()->second, 300, false});
    for (int r : w.apply(updates)) EXPECT_EQ(r, 0);
    EXPECT_EQ(w.applied, 100u);
    k.remove({"192.168.50.10", "203.0.113.10", IPPROTO_UDP, 5000, 53});  // someone else's
    m.on_readable();
    EXPECT_EQ(m.events, before + 1) << "only the DESTROY: none of our 100 updates";
    EXPECT_TRUE(v.live.empty());
  });
}

// A failed uplink's entries go, one by one: the others stay.
TEST(ConntrackKernel, TheWriterRemovesExactlyTheEntriesItIsGiven) {
  if (!can_run()) GTEST_SKIP() << "needs root and nf_conntrack_netlink";
  in_new_netns([] {
    View v;
    ConntrackMirror m(v.sink(), 1 << 20, 1 << 20);
    KernelConntrack k;
    ASSERT_EQ(k.create({"192.168.50.10", "203.0.113.10", IPPROTO_UDP, 5000, 53},
                       {"203.0.113.10", "100.64.0.2", IPPROTO_UDP, 53, 5000}),
              0);
    ASSERT_EQ(k.create({"192.168.50.11", "203.0.113.10", IPPROTO_UDP, 5001, 53},
                       {"203.0.113.10", "100.65.0.2", IPPROTO_UDP, 53, 5001}),
              0);
    m.on_readable();
    ASSERT_EQ(v.live.size(), 2u);
    CtEntry modem;
    for (const auto& [key, e] : v.live)
      if (e.orig.src.str() == "192.168.50.10") modem = e;
    ConntrackWriter w;
    ConntrackWriter::Update del{modem, 0, false};
    del.remove = true;
    const auto results = w.apply({del, del});
    EXPECT_EQ(results.at(0), 0);
    EXPECT_EQ(results.at(1), -ENOENT) << "gone already";
    m.on_readable();
    ASSERT_EQ(v.live.size(), 1u);
    EXPECT_EQ(v.live.begin()->second.orig.src.str(), "192.168.50.11");
  });
}

// One dump walks both families: a resync sees IPv4 and IPv6 entries, a mark-filtered dump and a
// flush by mark take exactly the entries whose mark matches, of either family.
TEST(ConntrackKernel, DumpsAndFlushesByMarkCoverBothFamilies) {
  if (!can_run()) GTEST_SKIP() << "needs root and nf_conntrack_netlink";
  in_new_netns([] {
    View v;
    ConntrackMirror m(v.sink(), 1 << 20, 1 << 20);
    KernelConntrack k;
    const auto v4 = [&](uint16_t port, uint32_t mark) {
      return k.create({"192.168.50.10", "203.0.113.10", IPPROTO_UDP, port, 53},
                      {"203.0.113.10", "100.64.0.2", IPPROTO_UDP, 53, port}, 120, mark);
    };
    const auto v6 = [&](uint16_t port, uint32_t mark) {
      return k.create({"2001:db8:50::10", "2001:db8:ffff::10", IPPROTO_UDP, port, 53},
                      {"2001:db8:ffff::10", "2001:db8:50::10", IPPROTO_UDP, 53, port}, 120, mark);
    };
    // Session 1 on uplink 1 (both families), session 2, session 1 without an uplink mark.
    ASSERT_EQ(v4(6000, 0x11000), 0);
    ASSERT_EQ(v6(6001, 0x11000), 0);
    ASSERT_EQ(v4(6002, 0x21000), 0);
    ASSERT_EQ(v6(6003, 0x10000), 0);
    ASSERT_TRUE(m.resync());
    EXPECT_EQ(v.live.size(), 4u);
    const auto ports = [](const std::vector<CtEntry>& entries) {
      std::set<uint16_t> out;
      for (const CtEntry& e : entries) out.insert(ntohs(e.orig.sport));
      return out;
    };
    const auto session = m.marked(0x10000, 0xf0000);
    ASSERT_TRUE(session);
    EXPECT_EQ(ports(*session), (std::set<uint16_t>{6000, 6001, 6003}));
    const auto unmarked = m.marked(0x10000, 0xff000);
    ASSERT_TRUE(unmarked);
    EXPECT_EQ(ports(*unmarked), std::set<uint16_t>{6003});
    ConntrackWriter w;
    EXPECT_EQ(w.delete_marked(0x11000, 0xff000), 0);
    ASSERT_TRUE(m.resync());
    EXPECT_EQ(v.live.size(), 2u);
    EXPECT_EQ(v.live.count(6002) + v.live.count(6003), 2u);
  });
}

// Entry X is created (its NEW event queued), the event socket overruns, X is destroyed while the
// socket is full (its DESTROY lost). The resync's dump no longer has X; the NEW event still
// queued from before the overrun must not bring it back.
TEST(ConntrackKernel, EventsOlderThanTheResyncAreNotApplied) {
  if (!can_run()) GTEST_SKIP() << "needs root and nf_conntrack_netlink";
  in_new_netns([] {
    View v;
    ConntrackMirror m(v.sink(), 4096, 4096);  // tiny: overruns at once
    KernelConntrack k;
    const KernelConntrack::Tuple x{"192.168.50.10", "203.0.113.10", IPPROTO_UDP, 1, 53};
    ASSERT_EQ(k.create(x, {"203.0.113.10", "100.64.0.2", IPPROTO_UDP, 53, 1}), 0);
    for (uint16_t p = 2; p < 400; ++p)
      ASSERT_EQ(k.create({"192.168.50.10", "203.0.113.10", IPPROTO_UDP, p, 53},
                         {"203.0.113.10", "100.64.0.2", IPPROTO_UDP, 53, p}),
                0);
    ASSERT_EQ(k.remove(x), 0);
    m.on_readable();
    EXPECT_GE(m.overruns, 1u);
    EXPECT_GE(m.stale_dropped, 1u);
    EXPECT_EQ(v.live.count(1), 0u) << "X came back from an event older than the resync";
    EXPECT_EQ(v.live.size(), 398u);
  });
}

}  // namespace
}  // namespace tp
