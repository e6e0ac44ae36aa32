// libFuzzer target: arbitrary frames through the kernel engine's real programs by
// BPF_PROG_TEST_RUN, with the golden state installed through the boundary. Input: one byte
// [port (bits 0-2) | hook (bits 3-4: tc, tc with CHECKSUM_COMPLETE, XDP, tc) | repair (bit 5)],
// then the frame. With "repair", the IPv4 header checksum and the TCP/UDP/ICMP checksum are made
// right after mutation, so that frames get past the checksum check and forwarded ones are checked.
// Aborts when: the verdict is anything but a punt (pass/pipe) or a redirect; a punted frame comes
// back changed; a run counts other than exactly one reason or one forward; a forwarded frame
// whose checksums were right comes out with a wrong one; under CHECKSUM_COMPLETE the program
// leaves skb->csum inconsistent; the data limits' egress program, run on every frame too, judges
// a frame (anything but TC_ACT_PIPE), changes it, or charges more than it holds. Needs root (BPF, a
// network namespace of its own).
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <utility>

#include "bpf_rig.hpp"
#include "checksum.hpp"
#include "golden_cases.hpp"

using namespace tp;
using namespace tp::test;

namespace {

BpfRig* g_rig = nullptr;

uint16_t get16(const Bytes& f, size_t at) { return static_cast<uint16_t>(f[at] << 8 | f[at + 1]); }
void put16(Bytes& f, size_t at, uint16_t v) {
  f[at] = static_cast<uint8_t>(v >> 8);
  f[at + 1] = static_cast<uint8_t>(v);
}

// Where the IP header and the transport header lie, when the frame holds them whole (lengths
// within the frame); verify_checksums may only be asked about such frames.
struct Layout {
  bool ok = false;
  int version = 0;
  size_t l3 = 14, l4 = 0, l4_len = 0;
  uint8_t proto = 0;
};

Layout layout(const Bytes& f) {
  Layout y;
  if (f.size() < 14) return y;
  uint16_t type = get16(f, 12);
  if (type == 0x8100) {
    if (f.size() < 18) return y;
    type = get16(f, 16);
    y.l3 = 18;
  }
  if (type == 0x0800) {
    if (f.size() < y.l3 + 20) return y;
    const size_t hlen = (f[y.l3] & 0x0f) * 4u, total = get16(f, y.l3 + 2);
    if (hlen < 20 || total < hlen || y.l3 + total > f.size()) return y;
    y.version = 4;
    y.proto = f[y.l3 + 9];
    y.l4 = y.l3 + hlen;
    y.l4_len = total - hlen;
  } else if (type == 0x86dd) {
    if (f.size() < y.l3 + 40 || y.l3 + 40 + get16(f, y.l3 + 4) > f.size()) return y;
    y.version = 6;
    y.proto = f[y.l3 + 6];
    y.l4 = y.l3 + 40;
    y.l4_len = get16(f, y.l3 + 4);
  } else {
    return y;
  }
  // The transport checksum field must lie within the datagram.
  const size_t need = y.proto == 6 ? 20 : y.proto == 17 || y.proto == 1 || y.proto == 58 ? 8 : 0;
  y.ok = y.l4_len >= need;
  return y;
}

void repair(Bytes& f) {
  const Layout y = layout(f);
  if (!y.ok) return;
  if (y.version == 4) {
    const size_t hlen = y.l4 - y.l3;
    put16(f, y.l3 + 10, 0);
    put16(f, y.l3 + 10, csum::finish(csum::sum_bytes(&f[y.l3], hlen)));
  }
  size_t at;
  if (y.proto == 6)
    at = y.l4 + 16;
  else if (y.proto == 17)
    at = y.l4 + 6;
  else if ((y.proto == 1 && y.version == 4) || (y.proto == 58 && y.version == 6))
    at = y.l4 + 2;
  else
    return;
  if (y.proto == 17 && y.version == 4 && get16(f, at) == 0) return;  // no checksum stays none
  uint32_t pseudo = 0;
  if (y.proto != 1)
    pseudo =
        (y.version == 4 ? csum::sum_bytes(&f[y.l3 + 12], 8) : csum::sum_bytes(&f[y.l3 + 8], 32)) +
        y.proto + static_cast<uint32_t>(y.l4_len);
  put16(f, at, 0);
  uint16_t c = csum::finish(csum::sum_bytes(&f[y.l4], y.l4_len, pseudo));
  if (y.proto == 17 && c == 0) c = 0xffff;
  put16(f, at, c);
}

bool checksums_right(const Bytes& f) { return layout(f).ok && verify_checksums(f).empty(); }

[[noreturn]] void finding(const char* what, const Bytes& in, const Bytes* out) {
  std::fprintf(stderr, "fuzz_bpf: %s\n in  %s\n", what, hex(in).c_str());
  if (out) std::fprintf(stderr, " out %s\n", hex(*out).c_str());
  std::abort();
}

std::array<uint64_t, kMaxPorts> forwards(FastPath& fp) {
  std::array<uint64_t, kMaxPorts> n{};
  for (uint8_t p = 0; p < kMaxPorts; ++p) n[p] = fp.port_counts(p).fwd_tx_packets;
  return n;
}

// The programs run in the kernel, out of libFuzzer's sight: a function of its own per outcome
// (hook x reason or egress port) gives each outcome its own coverage counter, so an input that
// reaches a new reason or port on a hook is kept and mutated further.
constexpr size_t kOutcomes = kReasonCount + kMaxPorts;
template <size_t I>
[[gnu::noinline]] void reached() {
  asm volatile("" ::: "memory");
}
template <size_t... I>
constexpr std::array<void (*)(), sizeof...(I)> outcome_table(std::index_sequence<I...>) {
  return {reached<I>...};
}
constexpr auto kReached = outcome_table(std::make_index_sequence<3 * kOutcomes>());

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  std::string why;
  std::unique_ptr<BpfRig> rig = BpfRig::create(why);
  if (!rig) {
    std::fprintf(stderr, "fuzz_bpf: cannot run here: %s\n", why.c_str());
    std::exit(1);
  }
  try {
    install_golden_state(rig->engine());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz_bpf: %s\n", e.what());
    std::exit(1);
  }
  // Limits armed and never reached: every charge is made, no verdict changes.
  for (uint8_t p = 0; p < BpfRig::kPorts; ++p) rig->engine().arm_limit(p, uint64_t{1} << 62, 0);
  if (!rig->has_xdp())
    std::fprintf(stderr, "fuzz_bpf: XDP inputs run through tc: %s\n",
                 rig->xdp_unavailable().c_str());
  g_rig = rig.release();  // lives as long as the process; its namespace goes with it
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t port = data[0] & 7;
  const unsigned hook = (data[0] >> 3) & 3;
  BpfRig::Mode mode = BpfRig::Mode::tc;
  if (hook == 1) mode = BpfRig::Mode::tc_csum_complete;
  if (hook == 2 && g_rig->has_xdp()) mode = BpfRig::Mode::xdp;
  Bytes frame(data + 1, data + size);
  if (data[0] & 0x20) repair(frame);

  FastPath& fp = g_rig->engine();
  const std::array<uint64_t, kMaxPorts> fwd0 = forwards(fp);
  const ReasonTotals why0 = fp.reasons();
  const BpfRig::Result& r = g_rig->run(mode, port, frame);
  if (r.err == EINVAL) return 0;  // a frame the test run cannot present (runt, short IP, too big)
  if (r.err == EBADMSG && mode == BpfRig::Mode::tc_csum_complete) {
    // Before tc the kernel moves an outer tag into skb->vlan_tci, adjusting skb->csum; the test
    // run leaves it in the frame, under a checksum bpf_skb_vlan_pop does not expect.
    if (frame.size() >= 14 && get16(frame, 12) == 0x8100) return 0;
    finding("skb->csum left inconsistent (CHECKSUM_COMPLETE)", frame, nullptr);
  }
  if (r.err) {
    std::fprintf(stderr, "fuzz_bpf: test run failed: %s\n", std::strerror(r.err));
    finding("test run failed", frame, nullptr);
  }
  const bool fwd = BpfRig::forwarded(mode, r.verdict), punt = BpfRig::punted(mode, r.verdict);
  if (!fwd && !punt) {
    std::fprintf(stderr, "fuzz_bpf: verdict %u\n", r.verdict);
    finding("neither punted nor forwarded", frame, &r.out);
  }
  const std::array<uint64_t, kMaxPorts> fwd1 = forwards(fp);
  const ReasonTotals why1 = fp.reasons();
  uint64_t dfwd = 0, dwhy = 0;
  size_t outcome = 0;
  for (size_t p = 0; p < kMaxPorts; ++p)
    if (fwd1[p] != fwd0[p]) {
      dfwd += fwd1[p] - fwd0[p];
      outcome = kReasonCount + p;
    }
  for (size_t i = 0; i < kReasonCount; ++i)
    if (why1[i] != why0[i]) {
      dwhy += why1[i] - why0[i];
      outcome = i;
    }
  if (dfwd + dwhy != 1 || (fwd && dfwd != 1) || (punt && dwhy != 1))
    finding("not exactly one reason or one forward counted", frame, &r.out);
  const size_t hook_index = mode == BpfRig::Mode::xdp ? 2 : mode == BpfRig::Mode::tc ? 0 : 1;
  kReached[hook_index * kOutcomes + outcome]();
  if (punt && r.out != frame) finding("punted frame changed", frame, &r.out);
  if (fwd && checksums_right(frame)) {
    if (!layout(r.out).ok) finding("forwarded frame lost its headers", frame, &r.out);
    const std::string bad = verify_checksums(r.out);
    if (!bad.empty()) finding(("forwarded with " + bad).c_str(), frame, &r.out);
  }

  const uint64_t used0 = fp.limit_used(port);
  const BpfRig::Result& e = g_rig->run(BpfRig::Mode::tc_egress, port, frame);
  if (e.err == EINVAL) return 0;
  if (e.err) finding("egress test run failed", frame, nullptr);
  if (e.verdict != TC_ACT_PIPE) finding("the egress program judged a frame", frame, &e.out);
  if (e.out != frame) finding("the egress program changed a frame", frame, &e.out);
  if (fp.limit_used(port) - used0 > frame.size())
    finding("the egress program charged more than the frame holds", frame, nullptr);
  return 0;
}
