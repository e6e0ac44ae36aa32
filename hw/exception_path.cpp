#include "exception_path.hpp"

#include <rte_mbuf.h>

#include <algorithm>

namespace tp::hw {
namespace {

constexpr unsigned kBurst = 32;
// Workers ring the doorbell after punting; this bounds the wait should a ring ever be missed.
constexpr uint32_t kMaxIdleWaitUs = 50000;
constexpr uint16_t kMaxFrame = 9018;  // jumbo MTU + Ethernet + one VLAN tag

}  // namespace

ExceptionPath::ExceptionPath(std::vector<PortLink> ports, rte_mempool* pool)
    : stats(ports.size()), ports_(std::move(ports)), pool_(pool) {
  std::vector<int> taps;
  for (auto& p : ports_) taps.push_back(p.tap->fd());
  doorbell.watch(taps);
}

ExceptionPath::~ExceptionPath() { stop(); }

void ExceptionPath::start() {
  thread_ = std::thread([this] { run(); });
}

void ExceptionPath::stop() {
  stop_ = true;
  doorbell.ring();
  if (thread_.joinable()) thread_.join();
  for (auto& p : ports_) {
    void* m;
    for (rte_ring* r : p.punt_rings)
      while (rte_ring_sc_dequeue(r, &m) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
  }
}

// Moves up to one burst each way for one port. True if anything moved.
bool ExceptionPath::pump(std::size_t i) {
  PortLink& p = ports_[i];
  ExceptionStats& st = stats[i];
  bool moved = false;
  rte_mbuf* pkts[kBurst];
  for (rte_ring* ring : p.punt_rings) {
    const unsigned n =
        rte_ring_sc_dequeue_burst(ring, reinterpret_cast<void**>(pkts), kBurst, nullptr);
    for (unsigned k = 0; k < n; ++k) {
      rte_mbuf* m = pkts[k];
      // A TAP write takes one contiguous frame.
      const bool ok = (m->nb_segs == 1 || rte_pktmbuf_linearize(m) == 0) &&
                      p.tap->write_frame(rte_pktmbuf_mtod(m, void*), m->data_len);
      (ok ? st.to_kernel : st.to_kernel_dropped).add(1);
      rte_pktmbuf_free(m);
    }
    moved |= n > 0;
  }
  for (unsigned k = 0; k < kBurst; ++k) {
    rte_mbuf* m = rte_pktmbuf_alloc(pool_);
    if (!m) {
      st.from_kernel_dropped.add(1);
      break;
    }
    const uint16_t room = std::min<uint16_t>(rte_pktmbuf_tailroom(m), kMaxFrame);
    const long len = p.tap->read_frame(rte_pktmbuf_mtod(m, void*), room);
    if (len <= 0) {
      rte_pktmbuf_free(m);
      break;
    }
    m->data_len = m->pkt_len = static_cast<uint16_t>(len);
    moved = true;
    if (rte_ring_sp_enqueue(p.inject, m) != 0) {
      st.from_kernel_dropped.add(1);
      rte_pktmbuf_free(m);
      continue;
    }
    st.from_kernel.add(1);
    p.inject_doorbell->ring();
  }
  return moved;
}

bool ExceptionPath::punts_pending() const {
  for (const auto& p : ports_)
    for (rte_ring* r : p.punt_rings)
      if (!rte_ring_empty(r)) return true;
  return false;
}

void ExceptionPath::set_suspended(bool suspended) {
  suspended_.store(suspended, std::memory_order_relaxed);
  doorbell.ring();
}

void ExceptionPath::run() {
  uint32_t empty = 0;
  while (!stop_.load(std::memory_order_relaxed)) {
    if (suspended_.load(std::memory_order_relaxed)) {
      doorbell.sleep_while(suspended_, stop_);
      continue;
    }
    bool moved = false;
    for (std::size_t i = 0; i < ports_.size(); ++i) moved |= pump(i);
    if (moved) {
      empty = 0;
      continue;
    }
    if (++empty < 200) continue;
    // Idle: sleep until a worker punts (doorbell) or the kernel sends on a TAP.
    doorbell.announce();
    if (punts_pending() || stop_.load(std::memory_order_relaxed)) {
      doorbell.cancel();
      continue;
    }
    doorbell.wait(kMaxIdleWaitUs);
  }
}

}  // namespace tp::hw
