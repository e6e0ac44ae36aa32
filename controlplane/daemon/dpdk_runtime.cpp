#include "dpdk_runtime.hpp"

#include <rte_eal.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <cstdio>
#include <cstring>
#include <iomanip>

#include "daemon_log.hpp"
#include "eal_args.hpp"
#include "packet_buffers.hpp"
#include "packet_pool.hpp"

namespace tp {
namespace {

// The configuration sizes the packet buffers (conf/packet_buffers.hpp) by DPDK's numbers.
static_assert(conf::kRxDescriptors == hw::kRxDescriptors &&
              conf::kTxDescriptors == hw::kTxDescriptors);
static_assert(conf::kMbufHeader == sizeof(rte_mbuf) &&
              conf::kMbufHeadroom == RTE_PKTMBUF_HEADROOM &&
              conf::kMinDataRoom == RTE_MBUF_DEFAULT_BUF_SIZE);
static_assert(conf::kMempoolObjectHeader >= sizeof(rte_mempool_objhdr));

int worker_main(void* arg) {
  auto* w = static_cast<std::pair<Worker*, std::atomic<bool>*>*>(arg);
  w->first->run(*w->second);
  delete w;
  return 0;
}

}  // namespace

DpdkRuntime::DpdkRuntime(const conf::Config& cfg) : cfg_(cfg) {
  try {
    build();
  } catch (...) {
    release();  // nothing is left behind: TAPs, devices, rings, memory
    throw;
  }
}

void DpdkRuntime::build() {
  const auto& dp = cfg_.dataplane;
  const unsigned n_workers = static_cast<unsigned>(dp.worker_lcores.size());
  for (unsigned lc : dp.worker_lcores)
    if (!rte_lcore_is_enabled(lc))
      throw RuntimeError("worker lcore " + std::to_string(lc) + " is not enabled in EAL");

  const unsigned n_ports = static_cast<unsigned>(cfg_.ports.size());
  // Every descriptor, ring and cache full at once, and the workers' bursts.
  const auto n_mbufs = static_cast<unsigned>(conf::packet_buffers(cfg_).total());
  pool_ = hw::create_packet_pool("tp_pkts", n_mbufs, conf::kPoolCache, conf::data_room(cfg_),
                                 /*packed=*/!has_pci_port(cfg_), rte_socket_id());
  exception_pool_ = rte_pktmbuf_pool_create("tp_exc", conf::kExceptionBuffers, 0, 0,
                                            conf::data_room(cfg_), rte_socket_id());
  if (!pool_ || !exception_pool_)
    throw RuntimeError("cannot allocate packet buffers (" + std::to_string(n_mbufs) +
                       " mbufs); raise dataplane.memory_mb");

  const size_t qsz = rte_rcu_qsbr_get_memsize(n_workers);
  qsv_ = static_cast<rte_rcu_qsbr*>(rte_zmalloc("tp_qsv", qsz, RTE_CACHE_LINE_SIZE));
  if (!qsv_ || rte_rcu_qsbr_init(qsv_, n_workers) != 0)
    throw RuntimeError("cannot create the RCU state");
  const uint32_t capacity = dp.flow_capacity * 2;  // two directions per flow
  v4_ = FlowTable4::create("tp_flows4", capacity, qsv_, rte_socket_id());
  v6_ = FlowTable6::create("tp_flows6", capacity, qsv_, rte_socket_id());
  if (!v4_ || !v6_)
    throw RuntimeError("cannot allocate flow tables for " + std::to_string(dp.flow_capacity) +
                       " flows; raise dataplane.memory_mb or lower dataplane.flow_capacity");
  if (cfg_.offload.ipv6 == conf::Ipv6Mode::neighbours) {
    rules6_ = RuleTable6::create("tp_rules6", kIpv6RuleCapacity, qsv_, rte_socket_id());
    if (!rules6_) throw RuntimeError("cannot allocate the IPv6 rule table");
  }
  topology_ = std::make_unique<TopologyPublisher>(qsv_);

  auto topo = topology_->edit();
  ports_.reserve(n_ports);
  for (unsigned i = 0; i < n_ports; ++i) {
    const conf::PortConfig& pc = cfg_.ports[i];
    PortState ps;
    ps.cfg = pc;
    std::string error;
    hw::PortSpec spec{pc.name, pc.device, pc.queues, static_cast<uint16_t>(n_workers),
                      pc.mtu,  pc.mac};
    ps.port = hw::Port::open(spec, pool_, error);
    if (!ps.port) throw RuntimeError(error);
    if (const auto& x = ps.port->xdp())
      log::Line(x->mode == "skb" ? log::Priority::warning : log::Priority::info)
          << "port " << pc.name << ": XDP program " << x->program << " (id " << x->program_id
          << ") in " << x->mode << " mode"
          << (x->mode == "skb" ? ": generic XDP, every frame takes the kernel's slow copy" : "");
    ps.tap = hw::Tap::create(pc.name, ps.port->mac(), pc.mtu, error);
    if (!ps.tap) throw RuntimeError("port " + pc.name + ": " + error);
    ps.link_up = ps.port->link_up();
    ps.tap->set_carrier(ps.link_up);

    PortInfo& info = topo->ports[i];
    info.enabled = true;
    std::memcpy(info.mac.addr_bytes, ps.port->mac().data(), 6);
    info.mtu = info.mtu6 = ps.mtu = ps.mtu6 = pc.mtu;
    port_rt_[i].eth_port = ps.port->id();
    const std::string ring_name = "tp_inject_" + std::to_string(i);
    port_rt_[i].inject = rte_ring_create(ring_name.c_str(), dp.exception_ring_size, rte_socket_id(),
                                         RING_F_SP_ENQ | RING_F_SC_DEQ);
    if (!port_rt_[i].inject) throw RuntimeError("cannot create the exception rings");
    ports_.push_back(std::move(ps));
  }
  topology_->publish(std::move(topo));

  punt_rings_.resize(n_workers);
  for (unsigned w = 0; w < n_workers; ++w)
    for (unsigned p = 0; p < n_ports; ++p) {
      const std::string name = "tp_punt_" + std::to_string(w) + "_" + std::to_string(p);
      punt_rings_[w][p] = rte_ring_create(name.c_str(), dp.exception_ring_size, rte_socket_id(),
                                          RING_F_SP_ENQ | RING_F_SC_DEQ);
      if (!punt_rings_[w][p]) throw RuntimeError("cannot create the exception rings");
    }

  // RX queues round-robin over workers; each port's inject ring goes to one worker.
  std::vector<WorkerConfig> wcfg(n_workers);
  unsigned next = 0;
  for (unsigned p = 0; p < n_ports; ++p) {
    for (uint16_t q = 0; q < cfg_.ports[p].queues; ++q)
      wcfg[next++ % n_workers].rx.push_back({p, q});
    wcfg[p % n_workers].inject.push_back(static_cast<uint8_t>(p));
  }
  for (auto& wc : wcfg)
    for (const auto& [port, queue] : wc.rx) {
      wc.rx_wait_fds.push_back(ports_[port].port->rx_wait_fd(queue));
      if (wc.rx_wait_fds.back() < 0)
        log::warning() << "port " << cfg_.ports[port].name << " queue " << queue
                       << " offers no descriptor to sleep on: its worker sleeps at most "
                          "idle_sleep_max_us at a time";
    }
  const Engine::Tables tables{v4_.get(), v6_.get(), topology_.get(), limits_.get(), rules6_.get()};
  for (unsigned w = 0; w < n_workers; ++w) {
    wcfg[w].id = w;
    wcfg[w].burst = dp.burst;
    wcfg[w].idle_sleep_max_us = dp.idle_sleep_max_us;
    workers_.push_back(std::make_unique<Worker>(wcfg[w], tables, qsv_, port_rt_,
                                                static_cast<uint16_t>(n_ports), punt_rings_[w]));
  }
  fast_path_ = std::make_unique<DpdkFastPath>(
      DpdkFastPath::Tables{v4_.get(), v6_.get(), rules6_.get(), topology_.get(), limits_.get()});
  for (const auto& w : workers_) fast_path_->add_counters(&w->counters);

  std::vector<hw::ExceptionPath::PortLink> links;
  for (unsigned p = 0; p < n_ports; ++p) {
    hw::ExceptionPath::PortLink l{
        ports_[p].tap.get(), {}, port_rt_[p].inject, &workers_[p % n_workers]->doorbell};
    for (unsigned w = 0; w < n_workers; ++w) l.punt_rings.push_back(punt_rings_[w][p]);
    links.push_back(std::move(l));
  }
  exception_ = std::make_unique<hw::ExceptionPath>(std::move(links), exception_pool_);
  for (auto& w : workers_) w->exception_doorbell = &exception_->doorbell;
}

DpdkRuntime::~DpdkRuntime() { release(); }

void DpdkRuntime::release() {
  stop();
  exception_.reset();
  workers_.clear();
  for (auto& rings : punt_rings_)
    for (rte_ring*& r : rings) {
      rte_ring_free(r);
      r = nullptr;
    }
  punt_rings_.clear();
  for (auto& pr : port_rt_) {
    void* m;
    while (pr.inject && rte_ring_dequeue(pr.inject, &m) == 0)
      rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
    rte_ring_free(pr.inject);
    pr.inject = nullptr;
  }
  ports_.clear();  // closes the TAPs (the kernel removes them) and the devices
  fast_path_.reset();
  topology_.reset();
  // The tables' defer queues check the RCU state when they go: before it is freed.
  v4_.reset();
  v6_.reset();
  rules6_.reset();
  rte_free(qsv_);
  qsv_ = nullptr;
  rte_mempool_free(exception_pool_);
  exception_pool_ = nullptr;
  rte_mempool_free(pool_);
  pool_ = nullptr;
}

// A launch that fails leaves the workers launched before it running: they are stopped and joined
// (stop()) before the error goes up, since the runtime that owns them may be freed right after.
void DpdkRuntime::start() {
  exception_->start();
  for (std::size_t w = 0; w < workers_.size(); ++w) {
    const unsigned lcore = cfg_.dataplane.worker_lcores[w];
    auto* arg = new std::pair<Worker*, std::atomic<bool>*>(workers_[w].get(), &stop_workers_);
    if (rte_eal_remote_launch(worker_main, arg, lcore) != 0) {
      delete arg;
      stop();
      throw RuntimeError("cannot launch a worker on lcore " + std::to_string(lcore));
    }
    launched_.push_back(lcore);
  }
}

void DpdkRuntime::stop() {
  stop_workers_ = true;
  for (auto& w : workers_) w->doorbell.ring();
  for (unsigned lcore : launched_) rte_eal_wait_lcore(lcore);
  launched_.clear();
  if (exception_) exception_->stop();
}

void DpdkRuntime::set_suspended(bool suspended) {
  if (exception_) exception_->set_suspended(suspended);
  for (auto& w : workers_) {
    w->suspended.store(suspended, std::memory_order_relaxed);
    w->doorbell.ring();
  }
}

void DpdkRuntime::poll_links() {
  bool topology_changed = false, mtus_changed = false;
  for (std::size_t i = 0; i < ports_.size(); ++i) {
    PortState& ps = ports_[i];
    const bool admin = ps.tap->admin_up();
    if (admin != ps.admin_up) {
      ps.admin_up = admin;
      port_rt_[i].active.store(admin, std::memory_order_relaxed);
      ps.port->set_admin(admin);
      topology_changed = true;
    }
    const bool link = ps.port->link_up();
    if (link != ps.link_up) {
      ps.link_up = link;
      ps.tap->set_carrier(link);
    }
    if (admin && link) {
      if (!ps.usable && on_port_up) on_port_up(static_cast<uint8_t>(i));
      ps.usable = true;
    } else if (ps.usable || topology_changed) {
      ps.usable = false;
      if (on_port_down) on_port_down(static_cast<uint8_t>(i));
    }
    // The kernel would not send more than its MTUs through the TAP, nor the port more than its
    // own; an error reading them keeps what was published.
    const uint16_t tap = ps.tap->mtu(), tap6 = ps.tap->ipv6_mtu();
    const uint16_t mtu = tap ? std::min(tap, ps.cfg.mtu) : ps.mtu;
    const uint16_t mtu6 = tap6 ? std::min(tap6, mtu) : std::min(ps.mtu6, mtu);
    if (mtu != ps.mtu || mtu6 != ps.mtu6) {
      ps.mtu = mtu;
      ps.mtu6 = mtu6;
      mtus_changed = true;
    }
  }
  if (topology_changed || mtus_changed) {
    auto t = topology_->edit();
    for (std::size_t i = 0; i < ports_.size(); ++i) {
      t->ports[i].enabled = ports_[i].admin_up;
      t->ports[i].mtu = ports_[i].mtu;
      t->ports[i].mtu6 = ports_[i].mtu6;
    }
    topology_->publish(std::move(t));
  }
}

PortTotals DpdkRuntime::port_totals(std::size_t i) const {
  PortTotals t;
  static_cast<PortCounts&>(t) = fast_path_->port_counts(static_cast<uint8_t>(i));
  const PortState& ps = ports_[i];
  t.name = ps.cfg.name;
  t.link = ps.admin_up ? (ps.link_up ? "up" : "no-carrier") : "down";
  t.attachment.engine = "dpdk";
  t.attachment.hook = "pmd";
  if (const auto& x = ps.port->xdp()) {
    t.attachment.hook = "af_xdp";
    t.attachment.mode = x->mode;
    t.attachment.program_id = x->program_id;
    t.attachment.program = x->program;
    t.attachment.programs = x->programs;
  }
  for (const auto& w : workers_)
    t.injected_ip_bytes += w->counters.ports[i].injected_ip_bytes.get();
  const auto& ex = exception_->stats[i];
  t.to_kernel = ex.to_kernel.get();
  t.from_kernel = ex.from_kernel.get();
  t.kernel_tx_packets = t.from_kernel;
  t.kernel_tx_bytes = t.injected_ip_bytes;
  t.exception_drops = ex.to_kernel_dropped.get() + ex.from_kernel_dropped.get();
  rte_eth_stats es{};
  rte_eth_stats_get(ps.port->id(), &es);
  t.pmd_tx_packets = es.opackets;
  t.rx_missed = es.imissed;
  t.rx_nombuf = es.rx_nombuf;
  return t;
}

WorkerTotals DpdkRuntime::worker_totals(std::size_t w) const {
  const Worker& wk = *workers_[w];
  WorkerTotals t;
  t.lcore = cfg_.dataplane.worker_lcores[w];
  t.busy_cycles = wk.stats.busy_cycles.get();
  t.idle_cycles = wk.stats.idle_cycles.get();
  t.packets = wk.counters.packets.get();
  t.bursts = wk.counters.bursts.get();
  t.injected = wk.stats.injected.get();
  t.sleeps = wk.stats.sleeps.get();
  t.punt_ring_full = wk.stats.punt_ring_full.get();
  t.tx_dropped = wk.stats.tx_dropped.get();
  return t;
}

std::optional<std::pair<unsigned, unsigned>> DpdkRuntime::free_mbufs() const {
  return std::pair{rte_mempool_avail_count(pool_), rte_mempool_avail_count(exception_pool_)};
}

void DpdkRuntime::report(std::ostream& out) const {
  out << std::left << std::setw(10) << "port" << std::right << std::setw(12) << "rx"
      << std::setw(12) << "fast rx" << std::setw(12) << "fast tx" << std::setw(12) << "punted"
      << std::setw(12) << "to kernel" << std::setw(12) << "from kernel" << std::setw(12)
      << "exc drops" << std::setw(12) << "pmd tx" << std::setw(10) << "link" << '\n';
  for (std::size_t i = 0; i < ports_.size(); ++i) {
    const PortTotals t = port_totals(i);
    out << std::left << std::setw(10) << t.name << std::right << std::setw(12) << t.rx_packets
        << std::setw(12) << t.fwd_rx_packets << std::setw(12) << t.fwd_tx_packets << std::setw(12)
        << t.punted << std::setw(12) << t.to_kernel << std::setw(12) << t.from_kernel
        << std::setw(12) << t.exception_drops << std::setw(12) << t.pmd_tx_packets << std::setw(12)
        << t.rx_missed << std::setw(12) << t.link << '\n';
  }
  for (std::size_t w = 0; w < workers_.size(); ++w) {
    const WorkerTotals t = worker_totals(w);
    out << "worker " << w << " (lcore " << t.lcore << "): busy " << t.busy_cycles << " idle "
        << t.idle_cycles << " cycles, " << t.clocks_per_packet() << " clocks/packet, "
        << (t.bursts ? t.packets / t.bursts : 0) << " packets/burst, " << t.sleeps
        << " sleeps, punt ring full " << t.punt_ring_full << ", tx dropped " << t.tx_dropped
        << '\n';
  }
  print_reasons(out, fast_path_->reasons());
}

}  // namespace tp
