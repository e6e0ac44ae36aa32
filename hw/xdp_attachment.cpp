#include "xdp_attachment.hpp"

#include <net/if.h>
#include <xdp/libxdp.h>

#include <memory>

namespace tp::hw {

std::optional<XdpAttachment> xdp_attachment(const std::string& iface) {
  const unsigned ifindex = if_nametoindex(iface.c_str());
  if (ifindex == 0) return std::nullopt;
  xdp_multiprog* raw = xdp_multiprog__get_from_ifindex(static_cast<int>(ifindex));
  if (!raw || libxdp_get_error(raw)) return std::nullopt;  // an encoded error is no object
  std::unique_ptr<xdp_multiprog, decltype(&xdp_multiprog__close)> mp(raw, &xdp_multiprog__close);
  XdpAttachment a;
  switch (xdp_multiprog__attach_mode(mp.get())) {
    case XDP_MODE_NATIVE:
      a.mode = "native";
      break;
    case XDP_MODE_SKB:
      a.mode = "skb";
      break;
    case XDP_MODE_HW:
      a.mode = "hw";
      break;
    default:
      return std::nullopt;  // nothing attached
  }
  const xdp_program* prog = xdp_multiprog__main_prog(mp.get());
  if (!xdp_multiprog__is_legacy(mp.get())) {
    a.programs = xdp_multiprog__program_count(mp.get());
    prog = xdp_multiprog__next_prog(nullptr, mp.get());
  }
  if (!prog) return std::nullopt;
  a.program = xdp_program__name(prog);
  a.program_id = xdp_program__id(prog);
  return a;
}

}  // namespace tp::hw
