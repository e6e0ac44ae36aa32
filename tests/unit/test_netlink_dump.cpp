// A netlink dump is complete only at NLMSG_DONE without NLM_F_DUMP_INTR; signals (EINTR), an
// earlier dump's leftovers (another sequence number), errors and interruptions are told apart,
// never taken for the whole table. The kernel's side is scripted datagram by datagram.
#include <gtest/gtest.h>
#include <libmnl/libmnl.h>

#include <cstring>
#include <deque>
#include <vector>

#include "netlink_dump.hpp"

namespace tp {
namespace {

// One datagram of messages, or an errno from recv.
struct Datagram {
  std::vector<char> bytes;
  int error = 0;
};

struct Script {
  std::deque<Datagram> q;
  Script& msg(uint32_t seq, uint16_t type = 100, uint16_t flags = NLM_F_MULTI) {
    Datagram d;
    d.bytes.resize(NLMSG_SPACE(4));
    auto* nlh = reinterpret_cast<nlmsghdr*>(d.bytes.data());
    nlh->nlmsg_len = NLMSG_LENGTH(4);
    nlh->nlmsg_type = type;
    nlh->nlmsg_flags = flags;
    nlh->nlmsg_seq = seq;
    q.push_back(std::move(d));
    return *this;
  }
  Script& done(uint32_t seq, uint16_t flags = NLM_F_MULTI) { return msg(seq, NLMSG_DONE, flags); }
  Script& fail(int e) {
    q.push_back(Datagram{{}, e});
    return *this;
  }
  Script& error_msg(uint32_t seq, int e) {
    Datagram d;
    d.bytes.resize(NLMSG_SPACE(sizeof(nlmsgerr)));
    auto* nlh = reinterpret_cast<nlmsghdr*>(d.bytes.data());
    nlh->nlmsg_len = NLMSG_LENGTH(sizeof(nlmsgerr));
    nlh->nlmsg_type = NLMSG_ERROR;
    nlh->nlmsg_seq = seq;
    reinterpret_cast<nlmsgerr*>(NLMSG_DATA(nlh))->error = -e;
    q.push_back(std::move(d));
    return *this;
  }
  ssize_t operator()(char* buf, std::size_t) {
    if (q.empty()) {
      errno = EAGAIN;
      return -1;
    }
    Datagram d = std::move(q.front());
    q.pop_front();
    if (d.error) {
      errno = d.error;
      return -1;
    }
    std::memcpy(buf, d.bytes.data(), d.bytes.size());
    return static_cast<ssize_t>(d.bytes.size());
  }
};

DumpResult run(Script& s, int& handled, uint64_t& stale) {
  char buf[8192];
  handled = 0;
  stale = 0;
  return read_dump(
      s, buf, sizeof buf, 7, [&](const nlmsghdr*) { ++handled; }, &stale);
}

TEST(NetlinkDump, SignalsAreRetriedAndLeftoversOfAnEarlierDumpSkipped) {
  Script s;
  s.msg(6)
      .msg(6)
      .done(6)  // an abandoned dump's tail, still queued
      .fail(EINTR)
      .msg(7)
      .fail(EINTR)
      .msg(7)
      .done(7);
  int handled;
  uint64_t stale;
  EXPECT_EQ(run(s, handled, stale), DumpResult::complete);
  EXPECT_EQ(handled, 2);
  EXPECT_EQ(stale, 3u);
}

TEST(NetlinkDump, AnInterruptedDumpIsNotComplete) {
  Script s;
  s.msg(7).msg(7, 100, NLM_F_MULTI | NLM_F_DUMP_INTR).msg(7).done(7);
  int handled;
  uint64_t stale;
  EXPECT_EQ(run(s, handled, stale), DumpResult::interrupted);
  Script s2;
  s2.msg(7).done(7, NLM_F_MULTI | NLM_F_DUMP_INTR);
  EXPECT_EQ(run(s2, handled, stale), DumpResult::interrupted);
}

TEST(NetlinkDump, ErrorsAndAClosedSocketFail) {
  int handled;
  uint64_t stale;
  Script s;
  s.msg(7).fail(ENOBUFS);
  EXPECT_EQ(run(s, handled, stale), DumpResult::failed);
  EXPECT_EQ(errno, ENOBUFS);
  Script s2;
  s2.msg(7).error_msg(7, EPERM);
  EXPECT_EQ(run(s2, handled, stale), DumpResult::failed);
  EXPECT_EQ(errno, EPERM);
  Script s3;
  s3.msg(7);  // no DONE: the socket has nothing more (EAGAIN)
  EXPECT_EQ(run(s3, handled, stale), DumpResult::failed);
}

}  // namespace
}  // namespace tp
