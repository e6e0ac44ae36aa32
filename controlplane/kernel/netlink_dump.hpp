// One netlink dump: send the request, then hand every reply message of that request to `handle`
// until the kernel's NLMSG_DONE. Shared by the rtnetlink and conntrack mirrors.
//
// A dump is only complete when NLMSG_DONE arrives without NLM_F_DUMP_INTR. Anything else is
// reported, never taken as the whole table: a resync that purged what an incomplete dump did not
// show would take established flows out of the fast path for good. Signals interrupt recv()
// (Boost installs its handlers without SA_RESTART), so EINTR is retried; messages of an earlier,
// abandoned dump still queued on the socket carry another sequence number and are skipped.
#pragma once

#include <libmnl/libmnl.h>
#include <linux/netlink.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>

namespace tp {

enum class DumpResult {
  complete,
  interrupted,  // the table changed during the dump (NLM_F_DUMP_INTR): run it again
  failed,       // the socket failed or the kernel answered an error (errno says which)
};

// The receive loop, apart from the socket so that a test can script what the kernel sends:
// `recv(buf, len)` returns what recvfrom() would (bytes, or -1 with errno).
template <class Recv, class Fn>
DumpResult read_dump(Recv&& recv, char* buf, std::size_t len, uint32_t seq, Fn&& handle,
                     uint64_t* stale = nullptr) {
  bool interrupted = false;
  for (;;) {
    const ssize_t n = recv(buf, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EPIPE;
      return DumpResult::failed;
    }
    int left = static_cast<int>(n);
    for (auto* nlh = reinterpret_cast<const nlmsghdr*>(buf); mnl_nlmsg_ok(nlh, left);
         nlh = mnl_nlmsg_next(nlh, &left)) {
      if (nlh->nlmsg_seq != seq) {
        if (stale) ++*stale;
        continue;
      }
      interrupted = interrupted || (nlh->nlmsg_flags & NLM_F_DUMP_INTR);
      if (nlh->nlmsg_type == NLMSG_DONE)
        return interrupted ? DumpResult::interrupted : DumpResult::complete;
      if (nlh->nlmsg_type == NLMSG_ERROR) {
        const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
        errno = err->error ? -err->error : EPROTO;
        return DumpResult::failed;
      }
      if (nlh->nlmsg_type == NLMSG_NOOP || nlh->nlmsg_type == NLMSG_OVERRUN) continue;
      handle(nlh);
    }
  }
}

template <class Fn>
DumpResult netlink_dump(mnl_socket* sock, nlmsghdr* request, char* buf, std::size_t len,
                        Fn&& handle, uint64_t* stale = nullptr) {
  while (mnl_socket_sendto(sock, request, request->nlmsg_len) < 0)
    if (errno != EINTR) return DumpResult::failed;
  return read_dump([sock](char* b, std::size_t l) { return mnl_socket_recvfrom(sock, b, l); }, buf,
                   len, request->nlmsg_seq, handle, stale);
}

// Reads and discards whatever is queued on a non-blocking socket. After an overrun (ENOBUFS) the
// events still queued are older than the resync dump that follows: applied on top of it they
// could reinstall a flow the kernel has destroyed since. Returns how many datagrams it dropped.
inline uint64_t drain_socket(mnl_socket* sock, char* buf, std::size_t len) {
  uint64_t n = 0;
  for (;;) {
    const ssize_t r = mnl_socket_recvfrom(sock, buf, len);
    if (r > 0) {
      ++n;
      continue;
    }
    if (r < 0 && (errno == EINTR || errno == ENOBUFS)) continue;
    return n;  // EAGAIN: empty
  }
}

}  // namespace tp
