// The fast-path flow table of one address family: each flow direction's key maps to a FlowAction.
//
// Why not rte_hash: it keeps keys, data pointers and actions in three places, so a hit reads a
// bucket line, a key-store line and an action line, and it costs 175 bytes per IPv4 flow. Here a
// direction is one entry (key and action side by side: 48 bytes for IPv4) in one array, found
// through 64-byte buckets of seven (16-bit tag, entry index) slots: a hit reads the bucket line
// and the entry's one or two lines, and an IPv4 flow costs about 120 bytes. perf/bench_flow_table
// measures both structures (docs/performance.md).
//
// Buckets are probed linearly; each counts the keys that probed past it (F14's outbound overflow
// count), so a lookup stops at the first bucket no key went beyond and keys never move. That makes
// lock-free readers simple: an entry is written completely, then published by one release store
// of its slot; a delete clears the slot and frees the entry only after every registered worker
// has reported a quiescent state (rte_rcu_qsbr defer queue), so a worker that found an action
// before the delete can finish its burst with it.
//
// The hash is keyed with random multipliers drawn when the table is created, so where a key lands
// cannot be known outside the box: nobody can send flows built to pile up in a few buckets and
// slow every lookup that walks through them.
//
// Threads: any number of workers call lookup_bulk(); exactly one control thread calls everything
// else. Workers never block.
#pragma once

#include <rte_prefetch.h>
#include <rte_rcu_qsbr.h>
#include <rte_vect.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>

#include "flow_action.hpp"
#include "flow_key.hpp"

namespace tp {

template <class F>
class FlowTable {
 public:
  using Key = typename F::Key;
  struct Entry {
    Key key;
    FlowAction action;
  };
  static constexpr uint32_t kMaxBulk = 64;

  // nullptr on failure, with rte_errno set. `capacity` counts directions (two per flow); every
  // one of them can be filled. The hash's key is random unless `seed` is given (tests and
  // benchmarks that must place keys the same way every run).
  static std::unique_ptr<FlowTable> create(const char* name, uint32_t capacity, rte_rcu_qsbr* qsv,
                                           int socket_id,
                                           std::optional<uint64_t> seed = std::nullopt);
  ~FlowTable();
  FlowTable(const FlowTable&) = delete;
  FlowTable& operator=(const FlowTable&) = delete;

  // Worker side. `n` <= kMaxBulk. Bit i of the returned mask is set when keys[i] was found;
  // actions[i] is then valid until the caller's next quiescent-state report.
  //
  // Passes over the whole burst, so that its memory accesses overlap: hash and prefetch every
  // home bucket; match tags, prefetching each candidate entry, or the next bucket when nothing
  // matched and keys went past this one (repeated for those keys until each has a candidate or
  // reached a bucket no key went past); compare the keys.
  uint64_t lookup_bulk(const Key** keys, uint32_t n, FlowAction** actions) const {
    uint32_t hash[kMaxBulk];
    uint32_t at[kMaxBulk];  // the bucket each key is matched in
    uint32_t cand[kMaxBulk];
    uint32_t walk[kMaxBulk];  // keys that go on to the next bucket
    for (uint32_t i = 0; i < n; ++i) {
      hash[i] = hash_of(*keys[i]);
      at[i] = bucket_of(hash[i]);
      rte_prefetch0(&buckets_[at[i]]);
      walk[i] = i;
    }
    uint32_t n_walk = n;
    for (uint32_t step = 0; n_walk && step < n_buckets_; ++step) {
      uint32_t still = 0;
      for (uint32_t j = 0; j < n_walk; ++j) {
        const uint32_t i = walk[j];
        if (step) at[i] = next(at[i]);
        const Bucket& b = buckets_[at[i]];
        cand[i] = match_tag(b, tag_of(hash[i]));
        if (cand[i] != kNone) {
          prefetch_entry(cand[i]);
        } else if (b.overflow.load(std::memory_order_relaxed)) {
          rte_prefetch0(&buckets_[next(at[i])]);
          walk[still++] = i;
        }
      }
      n_walk = still;
    }
    uint64_t hits = 0;
    for (uint32_t i = 0; i < n; ++i) {
      if (cand[i] == kNone) continue;
      const Entry* e = &entries_[cand[i]];
      if (!same(e->key, *keys[i])) e = probe(*keys[i], hash[i]);  // a tag collision: rare
      if (e) {
        actions[i] = const_cast<FlowAction*>(&e->action);
        hits |= uint64_t{1} << i;
      }
    }
    return hits;
  }

  // Control side. Inserts both directions or neither: -EINVAL if the keys are equal, -EEXIST if
  // either key is present, -ENOSPC when full.
  int insert(const Key& orig, const FlowAction& orig_action, const Key& reply,
             const FlowAction& reply_action);
  // One key alone (address rules, which have no reverse direction). -EEXIST, -ENOSPC.
  int insert_one(const Key& key, const FlowAction& action);
  // Removes both directions; -ENOENT if neither was present.
  int remove(const Key& orig, const Key& reply);
  // Removes one direction; used to clean up after partial state. -ENOENT if absent.
  int remove_one(const Key& key);
  FlowAction* find(const Key& key) const {
    const Entry* e = probe(key, hash_of(key));
    return e ? const_cast<FlowAction*>(&e->action) : nullptr;
  }
  // Returns entries whose grace period has passed; also runs on demand when the table is full.
  void reclaim();

  // Present directions (deleted ones awaiting their grace period are not counted).
  uint32_t size() const { return size_; }
  uint32_t capacity() const { return capacity_; }
  // Bytes of DPDK heap this table took at creation: buckets, entries and the defer queue.
  std::size_t memory_bytes() const { return memory_bytes_; }

  // How far present keys sit from their home bucket (the benchmarks print it). Control thread.
  struct ProbeStats {
    uint32_t keys = 0;
    uint32_t beyond_home = 0;   // keys not in their home bucket
    uint32_t max_distance = 0;  // buckets between home and the farthest key
  };
  ProbeStats probe_stats() const {
    ProbeStats st;
    for (uint32_t b = 0; b < n_buckets_; ++b)
      for (const auto& s : buckets_[b].slot) {
        const uint64_t v = s.load(std::memory_order_relaxed);
        if (!v) continue;
        const uint32_t home = bucket_of(hash_of(entries_[index_of(v)].key));
        const uint32_t d = b >= home ? b - home : b + n_buckets_ - home;
        ++st.keys;
        st.beyond_home += d != 0;
        st.max_distance = std::max(st.max_distance, d);
      }
    return st;
  }

  // Calls fn(const Key&, FlowAction&) for every present direction. Control thread only.
  template <class Fn>
  void for_each(Fn&& fn) const {
    for (uint32_t b = 0; b < n_buckets_; ++b)
      for (const auto& s : buckets_[b].slot) {
        const uint64_t v = s.load(std::memory_order_relaxed);
        if (v) fn(entries_[index_of(v)].key, entries_[index_of(v)].action);
      }
  }

 private:
  static constexpr uint32_t kSlots = 7;
  static constexpr uint32_t kNone = UINT32_MAX;
  // A slot: 0 when empty, else the key's tag in the high half and its entry index + 1 in the low.
  struct alignas(64) Bucket {
    std::atomic<uint32_t> overflow;  // keys whose probe went past this bucket
    uint32_t unused;
    std::atomic<uint64_t> slot[kSlots];
  };
  static_assert(sizeof(Bucket) == 64);

  // NH, UMAC's hash (Black et al., "UMAC: Fast and Secure Message Authentication", 1999): the
  // key's 64-bit words, each plus a random 64-bit word, multiplied in pairs into 128 bits and
  // summed. Over the random words two distinct keys give the same sum with probability at most
  // 2^-64, so without them no set of keys can be chosen to collide. A CRC would not do, seeded
  // or not: it is linear, keys sharing a CRC are easy to compute and collide under every seed.
  // The sum's halves are folded and finished with MurmurHash3's fmix64, so that keys that differ
  // in a few low bits (consecutive addresses or NAT ports) spread like random ones.
  static_assert(sizeof(Key) % 8 == 0);
  static constexpr std::size_t kKeyWords = sizeof(Key) / 8;
  static constexpr std::size_t kKeyPairs = (kKeyWords + 1) / 2;
  uint32_t hash_of(const Key& k) const {
    __extension__ using u128 = unsigned __int128;
    auto word = [&](std::size_t i) {
      uint64_t v = 0;  // an odd last word is paired with zero
      if (i < kKeyWords) std::memcpy(&v, reinterpret_cast<const char*>(&k) + 8 * i, 8);
      return v + hash_key_[i];
    };
    u128 sum = 0;
#pragma GCC unroll 4
    for (std::size_t i = 0; i < 2 * kKeyPairs; i += 2)
      sum += static_cast<u128>(word(i)) * word(i + 1);
    uint64_t h = static_cast<uint64_t>(sum >> 64) ^ static_cast<uint64_t>(sum);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return static_cast<uint32_t>(h >> 32);
  }
  static constexpr uint64_t kTagBits = ~uint64_t{UINT32_MAX};
  // Never zero, so a tag match also means the slot is not empty.
  static uint64_t tag_of(uint32_t hash) { return uint64_t{(hash & 0xffff) | 0x10000} << 32; }
  static uint32_t index_of(uint64_t slot) { return static_cast<uint32_t>(slot) - 1; }
  static bool same(const Key& a, const Key& b) { return std::memcmp(&a, &b, sizeof(Key)) == 0; }
  // Multiply-shift range reduction: any bucket count, not only powers of two, and it uses the
  // hash's high bits, leaving the low ones to the tag.
  uint32_t bucket_of(uint32_t hash) const {
    return static_cast<uint32_t>((uint64_t{hash} * n_buckets_) >> 32);
  }
  uint32_t next(uint32_t b) const { return b + 1 == n_buckets_ ? 0 : b + 1; }

  // The entry index of the first slot carrying `tag`, or kNone. Without a branch per slot: which
  // slot matches is random, and a mispredicted early exit costs more than comparing all seven.
  static uint32_t match_tag_scalar(const Bucket& b, uint64_t tag) {
    uint64_t v[kSlots];
    uint32_t match = 0;
#pragma GCC unroll 8
    for (uint32_t s = 0; s < kSlots; ++s) {
      v[s] = b.slot[s].load(std::memory_order_acquire);
      match |= static_cast<uint32_t>((v[s] & kTagBits) == tag) << s;
    }
    return match ? index_of(v[__builtin_ctz(match)]) : kNone;
  }

  static uint32_t match_tag(const Bucket& b, uint64_t tag) {
#ifdef __AVX2__
    // x86 reads every aligned 8-byte lane of a vector load atomically, so each lane is a value
    // some store wrote. The matching lane is read again on its own, with acquire, before its
    // entry is used; if it changed since the vector load (rare), the scalar match decides.
    const __m256i mask = _mm256_set1_epi64x(static_cast<long long>(kTagBits));
    const __m256i want = _mm256_set1_epi64x(static_cast<long long>(tag));
    auto matches = [&](const std::atomic<uint64_t>* four) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(four));
      const __m256i eq = _mm256_cmpeq_epi64(_mm256_and_si256(v, mask), want);
      return static_cast<uint32_t>(_mm256_movemask_pd(_mm256_castsi256_pd(eq)));
    };
    const uint32_t match = matches(&b.slot[0]) | matches(&b.slot[3]) << 3;  // slots 0-3, 3-6
    if (!match) return kNone;
    const uint64_t v = b.slot[__builtin_ctz(match)].load(std::memory_order_acquire);
    return (v & kTagBits) == tag ? index_of(v) : match_tag_scalar(b, tag);
#else
    return match_tag_scalar(b, tag);
#endif
  }

  // An IPv4 entry is 48 bytes: every other one straddles two cache lines.
  void prefetch_entry(uint32_t index) const {
    rte_prefetch0(&entries_[index]);
    rte_prefetch0(reinterpret_cast<const char*>(&entries_[index] + 1) - 1);
  }

  // Where a key sits: its bucket, slot and the slot's value as read.
  struct Found {
    uint32_t bucket, slot;
    uint64_t value;
  };
  // The full probe: every tag match of every bucket the key may have gone to.
  std::optional<Found> locate(const Key& key, uint32_t hash) const {
    const uint64_t tag = tag_of(hash);
    uint32_t b = bucket_of(hash);
    for (uint32_t step = 0; step < n_buckets_; ++step, b = next(b)) {
      const Bucket& bk = buckets_[b];
      for (uint32_t s = 0; s < kSlots; ++s) {
        const uint64_t v = bk.slot[s].load(std::memory_order_acquire);
        if ((v & kTagBits) == tag && same(entries_[index_of(v)].key, key)) return Found{b, s, v};
      }
      if (!bk.overflow.load(std::memory_order_relaxed)) break;
    }
    return std::nullopt;
  }
  const Entry* probe(const Key& key, uint32_t hash) const {
    const auto f = locate(key, hash);
    return f ? &entries_[index_of(f->value)] : nullptr;
  }

  FlowTable() = default;
  int alloc();
  void release(uint32_t index);  // straight back to the free list: never published
  void place(const Key& key, uint32_t index);
  // Adds `delta` to the overflow count of every bucket from `home` up to, not including, `end`.
  void count_overflow(uint32_t home, uint32_t end, int delta);
  void defer_free(uint32_t index);
  void wait_grace_period();
  static void free_deferred(void* self, void* elems, unsigned int n);

  uint64_t hash_key_[2 * kKeyPairs] = {};  // drawn at creation
  Bucket* buckets_ = nullptr;
  Entry* entries_ = nullptr;
  uint32_t n_buckets_ = 0;
  // Free entries are chained through their first four bytes; only ones no worker can still see.
  uint32_t free_head_ = kNone;
  rte_rcu_qsbr* qsv_ = nullptr;
  rte_rcu_qsbr_dq* dq_ = nullptr;
  uint32_t capacity_ = 0;
  uint32_t size_ = 0;
  std::size_t memory_bytes_ = 0;
};

extern template class FlowTable<V4>;
extern template class FlowTable<V6>;
extern template class FlowTable<R6>;
using FlowTable4 = FlowTable<V4>;
using FlowTable6 = FlowTable<V6>;
using RuleTable6 = FlowTable<R6>;

}  // namespace tp
