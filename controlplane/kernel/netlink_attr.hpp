// Walking rtnetlink attributes from C++: libmnl's mnl_attr_for_each relies on C's implicit void*
// conversion.
#pragma once

#include <libmnl/libmnl.h>
#include <sys/socket.h>

#include <cstddef>

#include "ip_addr.hpp"

namespace tp {

template <class Fn>
void for_each_attr(const nlmsghdr* nlh, std::size_t offset, Fn&& fn) {
  const auto* tail = static_cast<const char*>(mnl_nlmsg_get_payload_tail(nlh));
  for (auto* a = static_cast<const nlattr*>(mnl_nlmsg_get_payload_offset(nlh, offset));
       mnl_attr_ok(a, static_cast<int>(tail - reinterpret_cast<const char*>(a)));
       a = mnl_attr_next(a))
    fn(a);
}

template <class Fn>
void for_each_nested(const nlattr* nest, Fn&& fn) {
  const auto* end =
      static_cast<const char*>(mnl_attr_get_payload(nest)) + mnl_attr_get_payload_len(nest);
  for (auto* a = static_cast<const nlattr*>(mnl_attr_get_payload(nest));
       mnl_attr_ok(a, static_cast<int>(end - reinterpret_cast<const char*>(a)));
       a = mnl_attr_next(a))
    fn(a);
}

inline IpAddr addr_from(const nlattr* a, int family) {
  return family == AF_INET ? IpAddr::v4(mnl_attr_get_u32(a)) : IpAddr::v6(mnl_attr_get_payload(a));
}

}  // namespace tp
