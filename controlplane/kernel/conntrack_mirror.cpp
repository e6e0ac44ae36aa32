#include "conntrack_mirror.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <linux/filter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <stdexcept>

#include "conntrack_codec.hpp"
#include "daemon_log.hpp"
#include "netlink_dump.hpp"

namespace tp {
namespace {
constexpr std::size_t kNetlinkBuffer = 64 * 1024;
}  // namespace

ConntrackMirror::ConntrackMirror(Sink sink, int rcvbuf_bytes, int rcvbuf_max_bytes)
    : sink_(std::move(sink)), rcvbuf_(rcvbuf_bytes), rcvbuf_max_(rcvbuf_max_bytes) {
  events_ = mnl_socket_open(NETLINK_NETFILTER);
  if (!events_) throw std::runtime_error("conntrack: cannot open a netlink socket");
  const unsigned groups =
      NF_NETLINK_CONNTRACK_NEW | NF_NETLINK_CONNTRACK_UPDATE | NF_NETLINK_CONNTRACK_DESTROY;
  if (mnl_socket_bind(events_, groups, MNL_SOCKET_AUTOPID) < 0)
    throw std::runtime_error(
        "conntrack: cannot subscribe to events: " + std::string(std::strerror(errno)) +
        " (needs CAP_NET_ADMIN and nf_conntrack_netlink)");
  open_dump_socket();
  const int fd = mnl_socket_get_fd(events_);
  // FORCE: beyond net.core.rmem_max, as conntrackd does; needs CAP_NET_ADMIN, which we have.
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf_, sizeof rcvbuf_);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

ConntrackMirror::~ConntrackMirror() {
  if (events_) mnl_socket_close(events_);
  if (dump_) mnl_socket_close(dump_);
}

int ConntrackMirror::event_fd() const { return mnl_socket_get_fd(events_); }

void ConntrackMirror::open_dump_socket() {
  if (dump_) mnl_socket_close(dump_);
  dump_ = mnl_socket_open(NETLINK_NETFILTER);
  if (!dump_ || mnl_socket_bind(dump_, 0, MNL_SOCKET_AUTOPID) < 0)
    throw std::runtime_error("conntrack: cannot open the dump socket: " +
                             std::string(std::strerror(errno)));
}

void ConntrackMirror::ignore_events_from(uint32_t portid) {
  // Classic BPF on the netlink message: one conntrack event per skb, its sender's port id at
  // nlmsg_pid. BPF_ABS loads are big-endian, the field is in host order: compare with htonl.
  sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(nlmsghdr, nlmsg_pid)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, htonl(portid), 0, 1),
      BPF_STMT(BPF_RET | BPF_K, 0),           // ours: drop
      BPF_STMT(BPF_RET | BPF_K, 0xffffffff),  // anyone else's: keep
  };
  sock_fprog prog{static_cast<unsigned short>(std::size(code)), code};
  if (setsockopt(event_fd(), SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) != 0)
    throw std::runtime_error("conntrack: cannot filter our own events: " +
                             std::string(std::strerror(errno)));
}

void ConntrackMirror::handle(const nlmsghdr* nlh, bool from_dump) {
  const uint8_t type = NFNL_MSG_TYPE(nlh->nlmsg_type);
  CtEntry e;
  if (!parse_conntrack(nlh, e)) return;
  if (!from_dump) ++events;
  if (type == IPCTNL_MSG_CT_DELETE) {
    if (sink_.destroyed) sink_.destroyed(e);
  } else if (type == IPCTNL_MSG_CT_NEW) {
    if (sink_.upsert) sink_.upsert(e);
  }
}

void ConntrackMirror::on_readable() {
  static char buf[kNetlinkBuffer];
  for (;;) {
    const ssize_t n = mnl_socket_recvfrom(events_, buf, sizeof buf);
    if (n < 0) {
      if (errno != ENOBUFS) return;  // EAGAIN: drained
      // The kernel dropped events: grow the buffer so it happens less, then trust only a dump.
      // What is still queued predates the dump: dropped, not applied on top of it.
      ++overruns;
      if (rcvbuf_ < rcvbuf_max_) {
        rcvbuf_ = std::min(rcvbuf_ * 2, rcvbuf_max_);
        setsockopt(event_fd(), SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf_, sizeof rcvbuf_);
      }
      stale_dropped += drain_socket(events_, buf, sizeof buf);
      resync();
      continue;
    }
    int len = static_cast<int>(n);
    for (auto* nlh = reinterpret_cast<const nlmsghdr*>(buf); mnl_nlmsg_ok(nlh, len);
         nlh = mnl_nlmsg_next(nlh, &len))
      handle(nlh, false);
  }
}

namespace {

nlmsghdr* dump_request(char* buf, int family, uint32_t seq) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  nlh->nlmsg_seq = seq;
  auto* nfh = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfh->nfgen_family = static_cast<uint8_t>(family);
  nfh->version = NFNETLINK_V0;
  nfh->res_id = 0;
  return nlh;
}

}  // namespace

// One dump of both families (AF_UNSPEC): the kernel walks its whole table for a dump whatever the
// family asked (10,000 entries: ~10 ms here), so one walk instead of two halves what a resync and
// a reset wait.
std::optional<std::vector<CtEntry>> ConntrackMirror::marked(uint32_t mark, uint32_t mask) {
  std::vector<CtEntry> out;
  static char buf[kNetlinkBuffer];
  nlmsghdr* nlh = dump_request(buf, AF_UNSPEC, ++seq_);
  // The kernel filters the dump itself (ctnetlink's mark filter): only these entries come.
  mnl_attr_put_u32(nlh, CTA_MARK, htonl(mark));
  mnl_attr_put_u32(nlh, CTA_MARK_MASK, htonl(mask));
  const DumpResult r = netlink_dump(dump_, nlh, buf, sizeof buf, [&](const nlmsghdr* m) {
    CtEntry e;
    if (parse_conntrack(m, e) && (e.mark & mask) == mark) out.push_back(e);
  });
  if (r != DumpResult::complete) {
    if (r == DumpResult::failed) open_dump_socket();
    return std::nullopt;
  }
  return out;
}

ConntrackMirror::Dump ConntrackMirror::dump() {
  static char buf[kNetlinkBuffer];
  nlmsghdr* nlh = dump_request(buf, AF_UNSPEC, ++seq_);
  const DumpResult r = netlink_dump(
      dump_, nlh, buf, sizeof buf, [this](const nlmsghdr* m) { handle(m, true); }, &stale_dropped);
  if (r == DumpResult::failed) return Dump::failed;
  if (r == DumpResult::interrupted) return Dump::interrupted;
  return Dump::complete;
}

bool ConntrackMirror::resync() {
  constexpr int kAttempts = 4;
  ++resyncs;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    if (sink_.resync_begin) sink_.resync_begin();
    const Dump d = dump();
    if (d == Dump::complete) {
      if (sink_.resync_end) sink_.resync_end();
      resync_pending_ = false;
      return true;
    }
    ++dump_restarts;
    if (d == Dump::failed) {
      log::err() << "conntrack dump failed (" << std::strerror(errno) << "), reopening its socket";
      open_dump_socket();  // whatever the failed dump left queued goes with it
    }
  }
  ++resync_failures;
  resync_pending_ = true;
  if (sink_.resync_failed) sink_.resync_failed();
  return false;
}

std::string enable_conntrack_events() {
  const char* path = "/proc/sys/net/netfilter/nf_conntrack_events";
  std::string before;
  std::ifstream(path) >> before;
  if (before == "1") return "nf_conntrack_events is 1";
  std::ofstream out(path);
  out << "1\n";
  out.close();
  if (!out)
    return "could not set nf_conntrack_events to 1 (it is " + before +
           "): DESTROY events may be missing";
  return "set nf_conntrack_events from " + before +
         " to 1 (2 would omit DESTROY for entries created without a listener)";
}

}  // namespace tp
