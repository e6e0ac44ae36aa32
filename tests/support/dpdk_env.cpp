#include "dpdk_env.hpp"

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_malloc.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace tp::test {
namespace {
rte_mempool* g_pool = nullptr;
}

void init_eal(unsigned memory_mb) {
  static bool done = false;
  if (done) return;
  std::string mem = std::to_string(memory_mb);
  // Lcores 1 and 2 run the runtime tests' workers; they share CPU 0 with the main lcore, so every
  // machine has them, and idle they only wait for a launch.
  std::vector<std::string> args = {"tp-test",
                                   "-m",
                                   mem,
                                   "--no-pci",
                                   "--no-telemetry",
                                   "--lcores=0,1@0,2@0",
                                   "--log-level=*:warning"};
  // TP_HUGEPAGES=1 (benchmarks): a mounted hugetlbfs, used in memory so no file is left;
  // otherwise no hugepages at all, which every test machine has.
  const char* huge = std::getenv("TP_HUGEPAGES");
  if (huge && std::string(huge) == "1") {
    args.push_back("--in-memory");
  } else {
    args.push_back("--no-huge");
    args.push_back("--no-shconf");
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  if (rte_eal_init(static_cast<int>(argv.size()), argv.data()) < 0) {
    std::fprintf(stderr, "tests: rte_eal_init failed: %s\n", rte_strerror(rte_errno));
    std::exit(1);
  }
  g_pool =
      rte_pktmbuf_pool_create("tp_test", 8191, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
  if (!g_pool) {
    std::fprintf(stderr, "tests: mbuf pool: %s\n", rte_strerror(rte_errno));
    std::exit(1);
  }
  done = true;
}

rte_mempool* mbuf_pool() { return g_pool; }

void shutdown_eal() {
  rte_mempool_free(g_pool);
  g_pool = nullptr;
  rte_eal_cleanup();
}

QsbrVar::QsbrVar(uint32_t threads)
    : v(static_cast<rte_rcu_qsbr*>(
          rte_zmalloc("tp_test_qsbr", rte_rcu_qsbr_get_memsize(threads), RTE_CACHE_LINE_SIZE))) {
  rte_rcu_qsbr_init(v, threads);
}
QsbrVar::~QsbrVar() { rte_free(v); }

rte_mbuf* to_mbuf(const Bytes& frame) {
  rte_mbuf* m = rte_pktmbuf_alloc(g_pool);
  if (!m) return nullptr;
  char* p = rte_pktmbuf_append(m, static_cast<uint16_t>(frame.size()));
  if (!p) {
    rte_pktmbuf_free(m);
    return nullptr;
  }
  if (!frame.empty()) std::memcpy(p, frame.data(), frame.size());
  return m;
}

Bytes from_mbuf(const rte_mbuf* m) {
  auto* p = rte_pktmbuf_mtod(m, const uint8_t*);
  return Bytes(p, p + m->data_len);
}

}  // namespace tp::test
