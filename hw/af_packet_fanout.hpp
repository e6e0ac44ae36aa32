// AF_PACKET ports and IPv4 fragments. DPDK's net_af_packet (22.11, and every release since) joins
// each queue's socket to a fanout group with PACKET_FANOUT_FLAG_DEFRAG, a flag no devarg turns
// off. The kernel then reassembles IPv4 fragments before the ring; a datagram larger than a ring
// frame (framesz, 2048 bytes by default) arrives cut to the frame, the engine finds it malformed,
// and no IPv4 datagram larger than the MTU crosses the box. A socket cannot leave or change its
// fanout group, so the flag is taken out of the PMD's request itself: this process's setsockopt
// (af_packet_fanout.cpp, exported by the executables through af_packet_fanout.dynlist) drops
// PACKET_FANOUT_FLAG_DEFRAG and passes everything else through unchanged. Each fragment then
// arrives as its own frame, is punted as Reason::fragment, and the kernel reassembles, NATs and
// re-fragments it as a router does.
#pragma once

namespace tp::hw {

// True if the AF_PACKET socket `fd` is in a fanout group that reassembles IPv4 fragments (read
// back from the kernel with getsockopt(PACKET_FANOUT)).
bool af_packet_reassembles(int fd);

}  // namespace tp::hw
