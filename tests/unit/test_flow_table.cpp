// The flow table's contract: both directions or neither, no orphan after any failure, and
// lock-free readers that never see a torn, freed or stale-after-delete entry.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>

#include <pthread.h>

#include "dpdk_env.hpp"
#include "flow_table.hpp"

namespace tp {
namespace {

// EAL pins the main thread to lcore 0 and new threads inherit that; readers must run in parallel.
void unpin_from_eal_core() {
  cpu_set_t all;
  CPU_ZERO(&all);
  for (int c = 0; c < CPU_SETSIZE; ++c) CPU_SET(c, &all);
  pthread_setaffinity_np(pthread_self(), sizeof(all), &all);
}

FlowKey4 key(uint32_t i, bool reply = false) {
  // Original and reply keys of flow i differ in port and direction of the addresses.
  return reply ? FlowKey4{0x0a000000u + i, 0x0b000000u, 80, static_cast<uint16_t>(i), 6, 0, 0}
               : FlowKey4{0x0b000000u, 0x0a000000u + i, static_cast<uint16_t>(i), 80, 6, 1, 0};
}

FlowAction action(uint32_t tag) {
  FlowAction a;
  a.nat_addr = tag;
  a.nat_port = static_cast<uint16_t>(tag);
  return a;
}

TEST(FlowTable, InsertFindRemove) {
  test::init_eal();
  test::QsbrVar q(1);
  auto t = FlowTable4::create("ft_basic", 64, q.v, SOCKET_ID_ANY);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->insert(key(1), action(11), key(1, true), action(12)), 0);
  EXPECT_EQ(t->size(), 2u);
  ASSERT_NE(t->find(key(1)), nullptr);
  EXPECT_EQ(t->find(key(1))->nat_addr, 11u);
  EXPECT_EQ(t->find(key(1, true))->nat_addr, 12u);
  EXPECT_EQ(t->insert(key(1), action(1), key(2, true), action(2)), -EEXIST);
  EXPECT_EQ(t->insert(key(3), action(1), key(1, true), action(2)), -EEXIST);
  EXPECT_EQ(t->find(key(3)), nullptr) << "a refused insert must leave nothing behind";
  EXPECT_EQ(t->insert(key(4), action(1), key(4), action(2)), -EINVAL);
  EXPECT_EQ(t->remove(key(1), key(1, true)), 0);
  EXPECT_EQ(t->find(key(1)), nullptr);
  EXPECT_EQ(t->find(key(1, true)), nullptr);
  EXPECT_EQ(t->remove(key(1), key(1, true)), -ENOENT);
  EXPECT_EQ(t->size(), 0u);
  EXPECT_GT(t->memory_bytes(), 64 * sizeof(FlowAction));
}

TEST(FlowTable, CountersStartAtZeroWhenASlotIsReused) {
  test::QsbrVar q(1);
  auto t = FlowTable4::create("ft_reuse", 8, q.v, SOCKET_ID_ANY);
  ASSERT_TRUE(t);
  for (uint32_t round = 0; round < 20; ++round) {
    ASSERT_EQ(t->insert(key(round), action(round), key(round, true), action(round)), 0) << round;
    FlowAction* a = t->find(key(round));
    EXPECT_EQ(a->packets.load(), 0u);
    a->packets.store(99);
    ASSERT_EQ(t->remove(key(round), key(round, true)), 0);
  }
}

TEST(FlowTable, FullTableLeavesNoOrphanDirection) {
  test::QsbrVar q(1);
  constexpr uint32_t kCapacity = 256;
  auto t = FlowTable4::create("ft_full", kCapacity, q.v, SOCKET_ID_ANY);
  ASSERT_TRUE(t);
  uint32_t inserted = 0, failures = 0;
  for (uint32_t i = 0; i < 2 * kCapacity; ++i) {
    const int rc = t->insert(key(i), action(i), key(i, true), action(i));
    if (rc == 0) {
      ++inserted;
    } else {
      EXPECT_EQ(rc, -ENOSPC);
      ++failures;
    }
    ASSERT_EQ(t->size(), 2 * inserted) << "an orphan direction after insert " << i;
  }
  EXPECT_GT(failures, 0u);
  EXPECT_EQ(inserted, kCapacity / 2) << "every entry of the table can be used";
  for (uint32_t i = 0; i < 2 * kCapacity; ++i)
    EXPECT_EQ(t->find(key(i)) != nullptr, t->find(key(i, true)) != nullptr) << i;
}

// Every entry in use: keys pile up beyond their home buckets (the table keeps 80% of its slots
// filled at most), and deletes in the middle of those runs must not hide the keys after them.
TEST(FlowTable, FullTableFindsEveryKeyThroughDeletesAndReinserts) {
  test::QsbrVar q(1);
  constexpr uint32_t kFlows = 20000;
  auto t = FlowTable4::create("ft_fill", 2 * kFlows, q.v, SOCKET_ID_ANY);
  ASSERT_TRUE(t);
  for (uint32_t i = 0; i < kFlows; ++i)
    ASSERT_EQ(t->insert(key(i), action(i), key(i, true), action(i)), 0) << i;
  EXPECT_EQ(t->insert(key(kFlows), action(0), key(kFlows, true), action(0)), -ENOSPC);
  const auto st = t->probe_stats();
  EXPECT_EQ(st.keys, 2 * kFlows);
  EXPECT_GT(st.beyond_home, 0u) << "the test should exercise keys beyond their home bucket";
  EXPECT_GT(st.max_distance, 1u) << "and runs longer than one bucket";

  // lookup_bulk and find agree on every key, present or not.
  auto check = [&](uint32_t round, auto present) {
    for (uint32_t base = 0; base < kFlows + 64; base += 64) {
      FlowKey4 keys[64];
      const FlowKey4* kp[64];
      FlowAction* found[64];
      for (uint32_t j = 0; j < 64; ++j) {
        keys[j] = key(base + j, j % 2);
        kp[j] = &keys[j];
      }
      const uint64_t mask = t->lookup_bulk(kp, 64, found);
      for (uint32_t j = 0; j < 64; ++j) {
        const uint32_t i = base + j;
        const bool want = i < kFlows && present(i);
        ASSERT_EQ((mask >> j & 1) != 0, want) << "round " << round << " key " << i;
        ASSERT_EQ(t->find(keys[j]) != nullptr, want) << "round " << round << " key " << i;
        if (want) {
          ASSERT_EQ(found[j], t->find(keys[j]));
          ASSERT_EQ(found[j]->nat_addr >> 1, i) << "round " << round;
        }
      }
    }
  };
  for (uint32_t i = 0; i < kFlows; ++i) {
    // nat_addr carries the key, so a lookup that lands on another entry shows.
    t->find(key(i))->nat_addr = i << 1;
    t->find(key(i, true))->nat_addr = i << 1 | 1;
  }
  check(0, [](uint32_t) { return true; });
  for (uint32_t i = 0; i < kFlows; i += 3) ASSERT_EQ(t->remove(key(i), key(i, true)), 0);
  check(1, [](uint32_t i) { return i % 3 != 0; });
  for (uint32_t i = 0; i < kFlows; i += 3) {
    ASSERT_EQ(t->insert(key(i), action(i << 1), key(i, true), action(i << 1 | 1)), 0) << i;
  }
  check(2, [](uint32_t) { return true; });
  uint32_t visited = 0;
  t->for_each([&](const FlowKey4&, FlowAction&) { ++visited; });
  EXPECT_EQ(visited, t->size());
  EXPECT_EQ(t->size(), 2 * kFlows);
}

// One writer inserts and deletes flows while readers look them up without locks. Each action
// carries the identity of its key and the insert generation, so a reader that sees a recycled
// slot (use after free) or a torn entry notices; a key looked up after its delete completed and
// before its next insert began must not be found (stale after delete).
//
// Run twice: in a table with room for every key, and in one that half the keys fill (inserts also
// meet -ENOSPC), where many keys sit beyond their home bucket and deletes change the overflow
// counts readers follow.
void stress(const char* name, uint32_t capacity) {
  constexpr uint32_t kReaders = 2, kKeys = 512;
  test::QsbrVar q(kReaders);
  auto t = FlowTable4::create(name, capacity, q.v, SOCKET_ID_ANY);
  ASSERT_TRUE(t);
  // The writer moves each key through four states and publishes the state before and after the
  // table operation: 4n absent, 4n+1 inserting, 4n+2 present, 4n+3 removing. A reader that saw
  // the same stable state before and after its lookup knows what the lookup must return.
  std::vector<std::atomic<uint32_t>> gen(kKeys);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> lookups{0}, hits{0}, torn{0}, stale{0}, lost{0};

  auto reader = [&](unsigned id) {
    unpin_from_eal_core();
    rte_rcu_qsbr_thread_register(q.v, id);
    rte_rcu_qsbr_thread_online(q.v, id);
    std::vector<FlowKey4> keys(32);
    const FlowKey4* kp[32];
    FlowAction* found[32];
    uint32_t g_before[32];
    uint32_t base = id * 7;
    while (!stop.load(std::memory_order_relaxed)) {
      for (uint32_t j = 0; j < 32; ++j) {
        const uint32_t k = (base + j * 13) % kKeys;
        keys[j] = key(k);
        kp[j] = &keys[j];
        g_before[j] = gen[k].load(std::memory_order_acquire);
      }
      const uint64_t mask = t->lookup_bulk(kp, 32, found);
      for (uint32_t j = 0; j < 32; ++j) {
        const uint32_t k = (base + j * 13) % kKeys;
        const uint32_t g_after = gen[k].load(std::memory_order_acquire);
        const bool stable = g_before[j] == g_after;
        if (mask >> j & 1) {
          hits.fetch_add(1, std::memory_order_relaxed);
          const FlowAction* a = found[j];
          // nat_addr = key << 12 | generation; nat_port = key: a recycled or torn slot differs.
          if ((a->nat_addr >> 12) != k || a->nat_port != k) torn.fetch_add(1);
          if (stable && g_after % 4 == 0) stale.fetch_add(1);
        } else if (stable && g_after % 4 == 2) {
          lost.fetch_add(1);
        }
      }
      lookups.fetch_add(32, std::memory_order_relaxed);
      base += 5;
      rte_rcu_qsbr_quiescent(q.v, id);
    }
    rte_rcu_qsbr_thread_offline(q.v, id);
    rte_rcu_qsbr_thread_unregister(q.v, id);
  };

  std::vector<std::thread> readers;
  for (unsigned i = 0; i < kReaders; ++i) readers.emplace_back(reader, i);

  const char* env = std::getenv("TP_STRESS_SECONDS");
  const auto duration = std::chrono::milliseconds(env ? std::atoi(env) * 1000 : 1500);
  const auto until = std::chrono::steady_clock::now() + duration;
  uint64_t ops = 0;
  uint32_t seed = 1;
  while (std::chrono::steady_clock::now() < until) {
    seed = seed * 1103515245 + 12345;
    const uint32_t k = (seed >> 8) % kKeys;
    const uint32_t g = gen[k].load(std::memory_order_relaxed);
    gen[k].store(g + 1, std::memory_order_release);
    if (g % 4 == 0) {
      FlowAction a = action(k << 12 | (g & 0xfff));
      a.nat_port = static_cast<uint16_t>(k);
      const int rc = t->insert(key(k), a, key(k, true), a);
      ASSERT_TRUE(rc == 0 || rc == -ENOSPC) << rc;
      gen[k].store(rc == 0 ? g + 2 : g, std::memory_order_release);
    } else {
      ASSERT_EQ(t->remove(key(k), key(k, true)), 0);
      gen[k].store(g + 2, std::memory_order_release);
    }
    ++ops;
  }
  stop = true;
  for (auto& r : readers) r.join();
  EXPECT_EQ(torn.load(), 0u) << "a reader saw an action that belongs to another key";
  EXPECT_EQ(stale.load(), 0u) << "a reader found a key after its delete completed";
  EXPECT_EQ(lost.load(), 0u) << "a reader missed a key present throughout its lookup";
  EXPECT_GT(hits.load(), 0u);
  std::printf("stress (%u entries): %lu writer ops, %lu lookups, %lu hits\n", capacity,
              static_cast<unsigned long>(ops), static_cast<unsigned long>(lookups.load()),
              static_cast<unsigned long>(hits.load()));
}

TEST(FlowTable, ConcurrentReadersSeeNoTornFreedOrStaleEntries) { stress("ft_stress", 2048); }

TEST(FlowTable, ConcurrentReadersInAFullTable) { stress("ft_stress_full", 512); }

}  // namespace
}  // namespace tp
