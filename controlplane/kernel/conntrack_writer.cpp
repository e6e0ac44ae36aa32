#include "conntrack_writer.hpp"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack_tcp.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include "conntrack_codec.hpp"

namespace tp {
namespace {

// Netlink datagrams are at most this large when we read them (libmnl suggests 8 KiB; dumps and
// event bursts come in bigger chunks on large pages).
constexpr std::size_t kNetlinkBuffer = 64 * 1024;

constexpr std::size_t kBatchBytes = 64 * 1024;

uint32_t read_sysctl(const char* name, uint32_t fallback) {
  std::ifstream in(std::string("/proc/sys/net/netfilter/") + name);
  uint32_t v = 0;
  return in >> v ? v : fallback;
}

}  // namespace

ConntrackTimeouts ConntrackTimeouts::read_sysctls() {
  ConntrackTimeouts t;
  t.tcp_established = read_sysctl("nf_conntrack_tcp_timeout_established", t.tcp_established);
  t.udp = read_sysctl("nf_conntrack_udp_timeout", t.udp);
  t.udp_stream = read_sysctl("nf_conntrack_udp_timeout_stream", t.udp_stream);
  t.icmp = read_sysctl("nf_conntrack_icmp_timeout", t.icmp);
  t.icmpv6 = read_sysctl("nf_conntrack_icmpv6_timeout", t.icmpv6);
  return t;
}

// What the kernel itself would set on seeing a packet of this entry in its current state.
uint32_t ConntrackTimeouts::for_entry(const CtEntry& e) const {
  switch (e.proto) {
    case IPPROTO_TCP:
      return tcp_established;
    case IPPROTO_UDP:
      return (e.status & IPS_ASSURED) ? udp_stream : udp;
    case IPPROTO_ICMP:
      return icmp;
    case IPPROTO_ICMPV6:
      return icmpv6;
    default:
      return udp;
  }
}

ConntrackWriter::ConntrackWriter() {
  nl_ = mnl_socket_open(NETLINK_NETFILTER);
  if (!nl_ || mnl_socket_bind(nl_, 0, MNL_SOCKET_AUTOPID) < 0)
    throw std::runtime_error("conntrack: cannot open the update socket: " +
                             std::string(std::strerror(errno)));
  // Room for the acknowledgements of a whole batch.
  const int rcvbuf = 8 << 20;
  setsockopt(mnl_socket_get_fd(nl_), SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf);
}

uint32_t ConntrackWriter::portid() const { return mnl_socket_get_portid(nl_); }

ConntrackWriter::~ConntrackWriter() {
  if (nl_) mnl_socket_close(nl_);
}

std::vector<int> ConntrackWriter::apply(const std::vector<Update>& updates) {
  std::vector<int> results(updates.size(), -EIO);
  std::vector<char> buf(kBatchBytes + kNetlinkBuffer);
  std::size_t next = 0;
  while (next < updates.size()) {
    // One datagram: as many update messages as fit.
    mnl_nlmsg_batch* batch = mnl_nlmsg_batch_start(buf.data(), kBatchBytes);
    const uint32_t first_seq = seq_;
    std::size_t first = next;
    while (next < updates.size()) {
      const Update& u = updates[next];
      nlmsghdr* nlh = mnl_nlmsg_put_header(mnl_nlmsg_batch_current(batch));
      nlh->nlmsg_type =
          (NFNL_SUBSYS_CTNETLINK << 8) | (u.remove ? IPCTNL_MSG_CT_DELETE : IPCTNL_MSG_CT_NEW);
      nlh->nlmsg_flags =
          NLM_F_REQUEST | NLM_F_ACK;  // no NLM_F_CREATE: update an existing entry only
      nlh->nlmsg_seq = seq_++;
      auto* nfh = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
      nfh->nfgen_family = u.entry.family;
      nfh->version = NFNETLINK_V0;
      nfh->res_id = 0;
      nf_conntrack* ct = conntrack_for_update(u.entry);
      if (u.timeout && !u.remove) nfct_set_attr_u32(ct, ATTR_TIMEOUT, u.timeout);
      if (u.liberal && !u.remove && u.entry.proto == IPPROTO_TCP) {
        nfct_set_attr_u8(ct, ATTR_TCP_FLAGS_ORIG, IP_CT_TCP_FLAG_BE_LIBERAL);
        nfct_set_attr_u8(ct, ATTR_TCP_MASK_ORIG, IP_CT_TCP_FLAG_BE_LIBERAL);
        nfct_set_attr_u8(ct, ATTR_TCP_FLAGS_REPL, IP_CT_TCP_FLAG_BE_LIBERAL);
        nfct_set_attr_u8(ct, ATTR_TCP_MASK_REPL, IP_CT_TCP_FLAG_BE_LIBERAL);
      }
      nfct_nlmsg_build(nlh, ct);
      nfct_destroy(ct);
      if (!mnl_nlmsg_batch_next(batch)) {
        // Did not fit: this message starts the next datagram.
        --seq_;
        break;
      }
      ++next;
      ++messages;
    }
    const std::size_t count = next - first;
    if (mnl_socket_sendto(nl_, mnl_nlmsg_batch_head(batch), mnl_nlmsg_batch_size(batch)) < 0) {
      mnl_nlmsg_batch_stop(batch);
      for (std::size_t i = first; i < next; ++i) results[i] = -errno;
      continue;
    }
    ++datagrams;
    mnl_nlmsg_batch_stop(batch);
    // Every message is acknowledged (NLM_F_ACK): error 0 or a negative errno, by sequence number.
    std::size_t acked = 0;
    static char rbuf[kNetlinkBuffer];
    while (acked < count) {
      const ssize_t n = mnl_socket_recvfrom(nl_, rbuf, sizeof rbuf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      int len = static_cast<int>(n);
      for (auto* nlh = reinterpret_cast<const nlmsghdr*>(rbuf); mnl_nlmsg_ok(nlh, len);
           nlh = mnl_nlmsg_next(nlh, &len)) {
        if (nlh->nlmsg_type != NLMSG_ERROR) continue;
        const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
        const uint32_t idx = nlh->nlmsg_seq - first_seq;
        if (idx < count) {
          results[first + idx] = err->error;
          applied += err->error == 0;
          ++acked;
        }
      }
    }
  }
  return results;
}

int ConntrackWriter::delete_marked(uint32_t mark, uint32_t mask) {
  static char buf[kNetlinkBuffer];
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  const uint32_t seq = seq_++;
  nlh->nlmsg_seq = seq;
  auto* nfh = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfh->nfgen_family = AF_UNSPEC;  // without a tuple: a flush, filtered by the mark, any family
  nfh->version = NFNETLINK_V0;
  nfh->res_id = 0;
  mnl_attr_put_u32(nlh, CTA_MARK, htonl(mark));
  mnl_attr_put_u32(nlh, CTA_MARK_MASK, htonl(mask));
  ++messages;
  if (mnl_socket_sendto(nl_, nlh, nlh->nlmsg_len) < 0) return -errno;
  ++datagrams;
  for (;;) {
    const ssize_t n = mnl_socket_recvfrom(nl_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    if (n == 0) return -EIO;
    int len = static_cast<int>(n);
    for (auto* m = reinterpret_cast<const nlmsghdr*>(buf); mnl_nlmsg_ok(m, len);
         m = mnl_nlmsg_next(m, &len))
      if (m->nlmsg_type == NLMSG_ERROR && m->nlmsg_seq == seq)  // buf now holds the reply
        return static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(m))->error;
  }
}

}  // namespace tp
