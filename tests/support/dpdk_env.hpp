// DPDK for tests, the fuzzer and benchmarks: EAL without hugepages or PCI, the main lcore and two
// worker lcores (all on CPU 0), and helpers to move bytes in and out of mbufs.
#pragma once

#include <rte_mbuf.h>
#include <rte_rcu_qsbr.h>

#include "packet_builder.hpp"

namespace tp::test {

// Idempotent. `memory_mb` is the --no-huge heap; aborts with a message if EAL cannot start.
void init_eal(unsigned memory_mb = 512);
rte_mempool* mbuf_pool();
// Frees the pool and EAL's memory, so LeakSanitizer sees only the project's own leaks.
void shutdown_eal();

// An RCU QSBR variable for `threads` reader threads, on the DPDK heap for its lifetime.
struct QsbrVar {
  explicit QsbrVar(uint32_t threads);
  ~QsbrVar();
  QsbrVar(const QsbrVar&) = delete;
  QsbrVar& operator=(const QsbrVar&) = delete;
  rte_rcu_qsbr* v;
};

rte_mbuf* to_mbuf(const Bytes& frame);
Bytes from_mbuf(const rte_mbuf* m);

}  // namespace tp::test
