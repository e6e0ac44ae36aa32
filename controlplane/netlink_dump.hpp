// One netlink dump: send the request, then hand every reply message to `handle` until the
// kernel's NLMSG_DONE (or an error). Shared by the rtnetlink and conntrack mirrors.
#pragma once

#include <libmnl/libmnl.h>

#include <cstddef>

namespace tp {

// False when the request could not be sent.
template <class Fn>
bool netlink_dump(mnl_socket* sock, nlmsghdr* request, char* buf, std::size_t len, Fn&& handle) {
  if (mnl_socket_sendto(sock, request, request->nlmsg_len) < 0) return false;
  const unsigned portid = mnl_socket_get_portid(sock);
  const uint32_t seq = request->nlmsg_seq;
  auto trampoline = [](const nlmsghdr* m, void* fn) {
    (*static_cast<Fn*>(fn))(m);
    return MNL_CB_OK;
  };
  for (;;) {
    const ssize_t n = mnl_socket_recvfrom(sock, buf, len);
    if (n <= 0) return true;
    if (mnl_cb_run(buf, static_cast<std::size_t>(n), seq, portid, trampoline, &handle) <=
        MNL_CB_STOP)
      return true;
  }
}

}  // namespace tp
