#include "af_packet_fanout.hpp"

#include <linux/if_packet.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>

namespace {

// The fanout request's first 32 bits are the group id and, above it, type and flags, as an int
// and as struct fanout_args alike (the struct orders its halves by endianness to match).
constexpr uint32_t kDefragBit = uint32_t{PACKET_FANOUT_FLAG_DEFRAG} << 16;

}  // namespace

// Interposes libc's setsockopt for the whole process (the executable's definition comes first in
// the dynamic linker's search, also for the PMDs EAL loads as plugins). Only a PACKET_FANOUT
// request changes; the call goes to the kernel directly, as libc's would.
extern "C" int setsockopt(int fd, int level, int name, const void* value, socklen_t len) noexcept {
  fanout_args request{};
  if (level == SOL_PACKET && name == PACKET_FANOUT && value && len >= sizeof(uint32_t) &&
      len <= sizeof request) {
    std::memcpy(&request, value, len);
    uint32_t head;
    std::memcpy(&head, &request, sizeof head);
    head &= ~kDefragBit;
    std::memcpy(&request, &head, sizeof head);
    value = &request;
  }
  return static_cast<int>(syscall(SYS_setsockopt, fd, level, name, value, len));
}

namespace tp::hw {

bool af_packet_reassembles(int fd) {
  uint32_t fanout = 0;
  socklen_t len = sizeof fanout;
  if (getsockopt(fd, SOL_PACKET, PACKET_FANOUT, &fanout, &len) != 0) return false;
  // The kernel reports id | type << 16 | flags << 24, the flags being the request's high byte.
  return (fanout >> 24) & (PACKET_FANOUT_FLAG_DEFRAG >> 8);
}

}  // namespace tp::hw
