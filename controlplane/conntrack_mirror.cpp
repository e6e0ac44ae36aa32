#include "conntrack_mirror.hpp"

#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <stdexcept>

#include "conntrack_codec.hpp"
#include "netlink_dump.hpp"

namespace tp {
namespace {
constexpr std::size_t kNetlinkBuffer = 64 * 1024;
}  // namespace

ConntrackMirror::ConntrackMirror(Sink sink, int rcvbuf_bytes, int rcvbuf_max_bytes)
    : sink_(std::move(sink)), rcvbuf_(rcvbuf_bytes), rcvbuf_max_(rcvbuf_max_bytes) {
  events_ = mnl_socket_open(NETLINK_NETFILTER);
  dump_ = mnl_socket_open(NETLINK_NETFILTER);
  if (!events_ || !dump_) throw std::runtime_error("conntrack: cannot open a netlink socket");
  const unsigned groups =
      NF_NETLINK_CONNTRACK_NEW | NF_NETLINK_CONNTRACK_UPDATE | NF_NETLINK_CONNTRACK_DESTROY;
  if (mnl_socket_bind(events_, groups, MNL_SOCKET_AUTOPID) < 0 ||
      mnl_socket_bind(dump_, 0, MNL_SOCKET_AUTOPID) < 0)
    throw std::runtime_error(
        "conntrack: cannot subscribe to events: " + std::string(std::strerror(errno)) +
        " (needs CAP_NET_ADMIN and nf_conntrack_netlink)");
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
      ++overruns;
      if (rcvbuf_ < rcvbuf_max_) {
        rcvbuf_ = std::min(rcvbuf_ * 2, rcvbuf_max_);
        setsockopt(event_fd(), SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf_, sizeof rcvbuf_);
      }
      resync();
      continue;
    }
    int len = static_cast<int>(n);
    for (auto* nlh = reinterpret_cast<const nlmsghdr*>(buf); mnl_nlmsg_ok(nlh, len);
         nlh = mnl_nlmsg_next(nlh, &len))
      handle(nlh, false);
  }
}

void ConntrackMirror::dump() {
  for (int family : {AF_INET, AF_INET6}) {
    static char buf[kNetlinkBuffer];
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    nlh->nlmsg_seq = ++seq_;
    auto* nfh = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
    nfh->nfgen_family = static_cast<uint8_t>(family);
    nfh->version = NFNETLINK_V0;
    nfh->res_id = 0;
    if (!netlink_dump(dump_, nlh, buf, sizeof buf, [this](const nlmsghdr* m) { handle(m, true); }))
      throw std::runtime_error("conntrack: dump request failed: " +
                               std::string(std::strerror(errno)));
  }
}

void ConntrackMirror::resync() {
  ++resyncs;
  if (sink_.resync_begin) sink_.resync_begin();
  dump();
  if (sink_.resync_end) sink_.resync_end();
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
