#include "flow_table.hpp"

#include <rte_errno.h>
#include <rte_malloc.h>
#include <rte_random.h>
#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <new>
#include <string>

namespace tp {
namespace {

// Deletes queued for reclaim at once: an eighth of the entries, within these bounds. A full
// queue makes the control thread wait one grace period (a worker loop, microseconds) and reclaim
// it all, so its size bounds memory (16 bytes per element), not correctness.
constexpr uint32_t kMinDeferQueue = 256;
constexpr uint32_t kMaxDeferQueue = 64 * 1024;
// Filled slots over all slots when every entry is in use. Linear probing over 7-slot buckets
// keeps probes short up to here (bench_flow_table prints the share of keys beyond their home
// bucket); beyond, unknown-flow lookups walk long runs.
constexpr uint32_t kMaxLoadPercent = 80;

// Seeds expand into the hash's key words through splitmix64 (Steele, Lea, Flood 2014): every
// output bit depends on every seed bit.
uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// The kernel's entropy; so early in a boot that its pool is not ready yet (getrandom would block
// the start), DPDK's generator, which EAL seeded from the best source it found.
uint64_t random_seed() {
  uint64_t s;
  if (getrandom(&s, sizeof s, GRND_NONBLOCK) == sizeof s) return s;
  return rte_rand();
}

std::size_t heap_used(int socket_id) {
  rte_malloc_socket_stats st{};
  rte_malloc_get_socket_stats(socket_id < 0 ? 0 : socket_id, &st);
  return st.heap_allocsz_bytes;
}

}  // namespace

template <class F>
std::unique_ptr<FlowTable<F>> FlowTable<F>::create(const char* name, uint32_t capacity,
                                                   rte_rcu_qsbr* qsv, int socket_id,
                                                   std::optional<uint64_t> seed) {
  std::unique_ptr<FlowTable> t(new (std::nothrow) FlowTable());
  if (!t || capacity == 0 || capacity >= kNone || !qsv) {
    rte_errno = EINVAL;
    return nullptr;
  }
  uint64_t state = seed ? *seed : random_seed();
  for (uint64_t& word : t->hash_key_) word = splitmix64(state);
  const std::size_t before = heap_used(socket_id);
  const uint64_t slots = (uint64_t{capacity} * 100 + kMaxLoadPercent - 1) / kMaxLoadPercent;
  t->n_buckets_ = static_cast<uint32_t>((slots + kSlots - 1) / kSlots);
  const std::string buckets_name = std::string(name) + "_buckets";
  t->buckets_ = static_cast<Bucket*>(rte_zmalloc_socket(
      buckets_name.c_str(), sizeof(Bucket) * t->n_buckets_, RTE_CACHE_LINE_SIZE, socket_id));
  const std::string entries_name = std::string(name) + "_entries";
  t->entries_ = static_cast<Entry*>(rte_malloc_socket(
      entries_name.c_str(), sizeof(Entry) * capacity, RTE_CACHE_LINE_SIZE, socket_id));
  if (!t->buckets_ || !t->entries_) {
    rte_errno = ENOMEM;
    return nullptr;
  }
  for (uint32_t i = 0; i < t->n_buckets_; ++i) new (&t->buckets_[i]) Bucket();
  for (uint32_t i = capacity; i-- > 0;) {
    new (&t->entries_[i]) Entry();
    t->release(i);
  }
  t->capacity_ = capacity;
  t->qsv_ = qsv;

  const std::string dq_name = std::string(name) + "_dq";
  rte_rcu_qsbr_dq_parameters dp{};
  dp.name = dq_name.c_str();
  dp.flags = RTE_RCU_QSBR_DQ_MT_UNSAFE;  // single writer
  dp.size = std::clamp(capacity / 8, kMinDeferQueue, kMaxDeferQueue);
  dp.esize = sizeof(uint32_t);   // the deleted entry's index
  dp.trigger_reclaim_limit = 0;  // try a non-blocking reclaim on every delete
  dp.max_reclaim_size = 32;
  dp.free_fn = &FlowTable::free_deferred;
  dp.p = t.get();
  dp.v = qsv;
  t->dq_ = rte_rcu_qsbr_dq_create(&dp);
  if (!t->dq_) return nullptr;
  t->memory_bytes_ = heap_used(socket_id) - before;
  return t;
}

template <class F>
FlowTable<F>::~FlowTable() {
  if (dq_) rte_rcu_qsbr_dq_delete(dq_);  // waits out the grace period of what it still holds
  rte_free(entries_);
  rte_free(buckets_);
}

template <class F>
void FlowTable<F>::release(uint32_t index) {
  std::memcpy(static_cast<void*>(&entries_[index].key), &free_head_, sizeof(free_head_));
  free_head_ = index;
}

template <class F>
int FlowTable<F>::alloc() {
  if (free_head_ == kNone) wait_grace_period();  // free entries may all be waiting it out
  if (free_head_ == kNone) return -ENOSPC;
  const uint32_t index = free_head_;
  std::memcpy(&free_head_, &entries_[index].key, sizeof(free_head_));
  return static_cast<int>(index);
}

template <class F>
void FlowTable<F>::free_deferred(void* self, void* elems, unsigned int n) {
  auto* t = static_cast<FlowTable*>(self);
  auto* indices = static_cast<uint32_t*>(elems);
  for (unsigned int i = 0; i < n; ++i) t->release(indices[i]);
}

template <class F>
void FlowTable<F>::reclaim() {
  unsigned int freed, pending, available;
  rte_rcu_qsbr_dq_reclaim(dq_, UINT32_MAX, &freed, &pending, &available);
}

// Every online worker reports a quiescent state once per loop, so this waits microseconds.
template <class F>
void FlowTable<F>::wait_grace_period() {
  rte_rcu_qsbr_synchronize(qsv_, RTE_QSBR_THRID_INVALID);
  reclaim();
}

template <class F>
void FlowTable<F>::defer_free(uint32_t index) {
  if (rte_rcu_qsbr_dq_enqueue(dq_, &index) != 0) {
    wait_grace_period();
    rte_rcu_qsbr_dq_enqueue(dq_, &index);  // the queue was just drained
  }
}

// Publishes a fully written entry in the first free slot from the key's home bucket on. There is
// always one: slots outnumber entries. The overflow counts go up before the slot is filled, so a
// reader that sees the slot also walks far enough to reach it.
template <class F>
void FlowTable<F>::count_overflow(uint32_t home, uint32_t end, int delta) {
  for (uint32_t p = home; p != end; p = next(p))
    buckets_[p].overflow.store(buckets_[p].overflow.load(std::memory_order_relaxed) + delta,
                               std::memory_order_release);
}

template <class F>
void FlowTable<F>::place(const Key& key, uint32_t index) {
  const uint32_t hash = hash_of(key);
  const uint32_t home = bucket_of(hash);
  for (uint32_t b = home;; b = next(b)) {
    for (auto& s : buckets_[b].slot) {
      if (s.load(std::memory_order_relaxed)) continue;
      count_overflow(home, b, +1);
      s.store(tag_of(hash) | (uint64_t{index} + 1), std::memory_order_release);
      return;
    }
  }
}

template <class F>
int FlowTable<F>::insert(const Key& orig, const FlowAction& orig_action, const Key& reply,
                         const FlowAction& reply_action) {
  if (same(orig, reply)) return -EINVAL;
  if (find(orig) || find(reply)) return -EEXIST;
  const int a = alloc();
  if (a < 0) return a;
  const int b = alloc();
  if (b < 0) {
    release(static_cast<uint32_t>(a));
    return b;
  }
  entries_[a].key = orig;
  entries_[a].action = orig_action;  // counters start at zero
  entries_[b].key = reply;
  entries_[b].action = reply_action;
  place(orig, static_cast<uint32_t>(a));
  place(reply, static_cast<uint32_t>(b));
  size_ += 2;
  return 0;
}

template <class F>
int FlowTable<F>::insert_one(const Key& key, const FlowAction& action) {
  if (find(key)) return -EEXIST;
  const int a = alloc();
  if (a < 0) return a;
  entries_[a].key = key;
  entries_[a].action = action;
  place(key, static_cast<uint32_t>(a));
  ++size_;
  return 0;
}

// Clears the slot first, then lowers the overflow counts it had raised: a reader either still
// finds the entry (freed only after the grace period) or misses it, never walks too short for
// another key.
template <class F>
int FlowTable<F>::remove_one(const Key& key) {
  const uint32_t hash = hash_of(key);
  const auto f = locate(key, hash);
  if (!f) return -ENOENT;
  buckets_[f->bucket].slot[f->slot].store(0, std::memory_order_release);
  count_overflow(bucket_of(hash), f->bucket, -1);
  defer_free(index_of(f->value));
  --size_;
  return 0;
}

template <class F>
int FlowTable<F>::remove(const Key& orig, const Key& reply) {
  const int a = remove_one(orig);
  const int b = remove_one(reply);
  return a == 0 || b == 0 ? 0 : -ENOENT;
}

template class FlowTable<V4>;
template class FlowTable<V6>;
template class FlowTable<R6>;

}  // namespace tp
