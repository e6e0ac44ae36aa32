#include "worker.hpp"

#include "worker_clock.hpp"

#include <rte_cycles.h>
#include <rte_malloc.h>

#include "parse.hpp"

namespace tp {
namespace {

// Partial TX bursts wait at most this long (l3fwd's BURST_TX_DRAIN_US).
constexpr uint64_t kDrainUs = 100;
// Empty polls in a row before the worker starts sleeping: ~50 us of spinning at full speed, so a
// busy port never pays a wake-up.
constexpr uint32_t kSpinPollsBeforeSleep = 2000;
// With wakeable ports the timeout is only a safety net (link changes are handled elsewhere).
constexpr uint32_t kWakeableSleepUs = 100000;

void count_tx_drop(rte_mbuf** pkts, uint16_t unsent, void* userdata) {
  static_cast<Counter*>(userdata)->add(unsent);
  rte_pktmbuf_free_bulk(pkts, unsent);
}

}  // namespace

Worker::Worker(const WorkerConfig& cfg, const Engine::Tables& tables, rte_rcu_qsbr* qsv,
               std::array<PortRuntime, kMaxPorts>& ports, uint16_t n_ports,
               std::array<rte_ring*, kMaxPorts> punt_rings)
    : cfg_(cfg),
      engine_(tables, counters),
      limits_(tables.limits),
      qsv_(qsv),
      ports_(ports),
      n_ports_(n_ports),
      punt_rings_(punt_rings) {
  std::vector<int> wakeable;
  for (int fd : cfg_.rx_wait_fds)
    if (fd >= 0) wakeable.push_back(fd);
  all_queues_wake_ = !wakeable.empty() && wakeable.size() == cfg_.rx.size();
  doorbell.watch(wakeable);
  for (uint16_t p = 0; p < n_ports_; ++p) {
    tx_buffers_[p] = static_cast<rte_eth_dev_tx_buffer*>(
        rte_zmalloc("tx_buffer", RTE_ETH_TX_BUFFER_SIZE(kMaxBurst), RTE_CACHE_LINE_SIZE));
    rte_eth_tx_buffer_init(tx_buffers_[p], cfg_.burst);
    rte_eth_tx_buffer_set_err_callback(tx_buffers_[p], count_tx_drop, &stats.tx_dropped);
  }
}

void Worker::send(uint8_t port, rte_mbuf** pkts, uint16_t n) {
  PortRuntime& pr = ports_[port];
  if (!pr.active.load(std::memory_order_relaxed)) {
    stats.tx_dropped.add(n);
    rte_pktmbuf_free_bulk(pkts, n);
    return;
  }
  for (uint16_t i = 0; i < n; ++i)
    rte_eth_tx_buffer(pr.eth_port, cfg_.id, tx_buffers_[port], pkts[i]);
}

void Worker::flush_all() {
  for (uint16_t p = 0; p < n_ports_; ++p)
    rte_eth_tx_buffer_flush(ports_[p].eth_port, cfg_.id, tx_buffers_[p]);
}

// One pass over every RX queue and inject ring this worker owns: how many packets moved, and
// whether any queue gave a full burst (more is waiting).
Worker::Poll Worker::poll_once(uint32_t now) {
  rte_mbuf* pkts[kMaxBurst];
  Poll moved;
  for (const auto& [port, queue] : cfg_.rx) {
    PortRuntime& pr = ports_[port];
    if (!pr.active.load(std::memory_order_relaxed)) continue;
    const uint16_t n = rte_eth_rx_burst(pr.eth_port, queue, pkts, cfg_.burst);
    if (n == 0) continue;
    moved.packets += n;
    moved.full = moved.full || n == cfg_.burst;
    engine_.process(port, pkts, n, now, out_);
    for (uint16_t i = 0; i < out_.n_tx_ports; ++i) {
      const uint8_t eg = out_.tx_ports[i];
      send(eg, out_.tx[eg].pkts.data(), out_.tx[eg].n);
    }
    if (out_.punt.n) {
      // Never block on the exception path: what does not fit is dropped and counted.
      const unsigned queued = rte_ring_sp_enqueue_burst(
          punt_rings_[port], reinterpret_cast<void**>(out_.punt.pkts.data()), out_.punt.n, nullptr);
      if (queued < out_.punt.n) {
        stats.punt_ring_full.add(out_.punt.n - queued);
        rte_pktmbuf_free_bulk(&out_.punt.pkts[queued], out_.punt.n - queued);
      }
      if (exception_doorbell) exception_doorbell->ring();
    }
    if (out_.drop.n) rte_pktmbuf_free_bulk(out_.drop.pkts.data(), out_.drop.n);
    out_.clear();
  }
  for (uint8_t port : cfg_.inject) {
    const unsigned n = rte_ring_sc_dequeue_burst(
        ports_[port].inject, reinterpret_cast<void**>(pkts), cfg_.burst, nullptr);
    if (n == 0) continue;
    moved.packets += n;
    moved.full = moved.full || n == cfg_.burst;
    stats.injected.add(n);
    uint64_t bytes = 0;
    for (unsigned i = 0; i < n; ++i) bytes += frame_ip_bytes(pkts[i]);
    counters.ports[port].injected_ip_bytes.add(bytes);
    limits_->charge(port, bytes);
    send(port, pkts, static_cast<uint16_t>(n));
  }
  return moved;
}

bool Worker::inject_pending() const {
  for (uint8_t port : cfg_.inject)
    if (!rte_ring_empty(ports_[port].inject)) return true;
  return false;
}

// Offline while asleep, so the control thread's grace periods do not wait for a sleeping worker.
// Frames from the kernel ring the doorbell. Where the ports can wake us (rx_wait_fds), the sleep
// lasts until traffic arrives; otherwise it is bounded by idle_sleep_max_us, which is then the
// first packet's extra latency after idleness.
void Worker::idle_sleep(uint32_t& backoff_us) {
  doorbell.announce();
  if (inject_pending()) {
    doorbell.cancel();
    return;
  }
  rte_rcu_qsbr_thread_offline(qsv_, cfg_.id);
  // Queues without a descriptor are only seen again when the timeout ends the sleep.
  doorbell.wait(all_queues_wake_ ? kWakeableSleepUs : backoff_us);
  rte_rcu_qsbr_thread_online(qsv_, cfg_.id);
  stats.sleeps.add(1);
  backoff_us = std::min(backoff_us * 2, cfg_.idle_sleep_max_us);
}

// Suspended: offline, asleep on the doorbell alone, until resumed or stopped.
void Worker::suspend_sleep(const std::atomic<bool>& stop) {
  flush_all();
  rte_rcu_qsbr_thread_offline(qsv_, cfg_.id);
  stats.sleeps.add(doorbell.sleep_while(suspended, stop));
  rte_rcu_qsbr_thread_online(qsv_, cfg_.id);
}

void Worker::run(const std::atomic<bool>& stop) {
  rte_rcu_qsbr_thread_register(qsv_, cfg_.id);
  rte_rcu_qsbr_thread_online(qsv_, cfg_.id);
  const uint64_t hz = rte_get_tsc_hz();
  const uint64_t drain_tsc = hz / 1000000 * kDrainUs;
  const uint64_t tsc_per_ms = hz / 1000;
  uint64_t last_drain = rte_rdtsc();
  uint32_t empty_polls = 0;
  uint32_t backoff_us = 10;
  while (!stop.load(std::memory_order_relaxed)) {
    if (suspended.load(std::memory_order_relaxed)) {
      suspend_sleep(stop);
      continue;
    }
    const uint64_t t0 = rte_rdtsc();
    const Poll moved = poll_once(worker_clock_ms(t0, tsc_per_ms));
    // Under load (full bursts) TX batches fill up and leave on their own, or after kDrainUs at
    // most; when the ports run dry the partial batches leave now, so light traffic does not
    // wait out the drain period.
    if ((moved.packets && !moved.full) || t0 - last_drain > drain_tsc) {
      flush_all();
      last_drain = t0;
    }
    rte_rcu_qsbr_quiescent(qsv_, cfg_.id);
    if (moved.packets) {
      empty_polls = 0;
      backoff_us = 10;
      stats.busy_cycles.add(rte_rdtsc() - t0);
      continue;
    }
    if (++empty_polls > kSpinPollsBeforeSleep && cfg_.idle_sleep_max_us > 0) {
      flush_all();
      idle_sleep(backoff_us);
    }
    stats.idle_cycles.add(rte_rdtsc() - t0);
  }
  flush_all();
  rte_rcu_qsbr_thread_offline(qsv_, cfg_.id);
  rte_rcu_qsbr_thread_unregister(qsv_, cfg_.id);
}

}  // namespace tp
