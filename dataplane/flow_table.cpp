#include "flow_table.hpp"

#include <rte_errno.h>
#include <rte_hash_crc.h>
#include <rte_malloc.h>

#include <algorithm>
#include <cerrno>
#include <new>
#include <string>

namespace tp {
namespace {

// Deletes queued for reclaim at once. A full queue makes the control thread wait one grace
// period (a worker loop) instead, so this bounds memory, not correctness.
constexpr uint32_t kDeferQueueSize = 64 * 1024;

std::size_t heap_used(int socket_id) {
  rte_malloc_socket_stats st{};
  rte_malloc_get_socket_stats(socket_id < 0 ? 0 : socket_id, &st);
  return st.heap_allocsz_bytes;
}

}  // namespace

template <class F>
std::unique_ptr<FlowTable<F>> FlowTable<F>::create(const char* name, uint32_t capacity,
                                                   rte_rcu_qsbr* qsv, int socket_id) {
  std::unique_ptr<FlowTable> t(new (std::nothrow) FlowTable());
  if (!t || capacity == 0 || !qsv) {
    rte_errno = EINVAL;
    return nullptr;
  }
  const std::size_t before = heap_used(socket_id);
  rte_hash_parameters hp{};
  hp.name = name;
  hp.entries = capacity;
  hp.key_len = sizeof(Key);
  hp.hash_func = rte_hash_crc;
  hp.socket_id = socket_id;
  // Lock-free readers; deletes leave the key slot allocated until we free it after a grace period.
  hp.extra_flag = RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF;
  t->hash_ = rte_hash_create(&hp);
  if (!t->hash_) return nullptr;

  const uint32_t slots = static_cast<uint32_t>(rte_hash_max_key_id(t->hash_)) + 1;
  t->actions_ = static_cast<FlowAction*>(rte_zmalloc_socket(
      "flow_actions", sizeof(FlowAction) * slots, RTE_CACHE_LINE_SIZE, socket_id));
  if (!t->actions_) {
    rte_errno = ENOMEM;
    return nullptr;
  }
  for (uint32_t i = 0; i < slots; ++i) new (&t->actions_[i]) FlowAction();
  t->capacity_ = capacity;
  t->qsv_ = qsv;

  const std::string dq_name = std::string(name) + "_dq";
  rte_rcu_qsbr_dq_parameters dp{};
  dp.name = dq_name.c_str();
  dp.flags = RTE_RCU_QSBR_DQ_MT_UNSAFE;  // single writer
  dp.size = std::min(capacity, kDeferQueueSize);
  dp.esize = sizeof(int32_t);    // the deleted key's position
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
  rte_hash_free(hash_);
  rte_free(actions_);
}

template <class F>
void FlowTable<F>::free_deferred(void* self, void* elems, unsigned int n) {
  auto* t = static_cast<FlowTable*>(self);
  auto* positions = static_cast<int32_t*>(elems);
  for (unsigned int i = 0; i < n; ++i) rte_hash_free_key_with_position(t->hash_, positions[i]);
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

// Adds `key` with no action yet (workers treat it as a miss) and writes its action into the
// slot rte_hash chose. Returns the position or a negative errno.
template <class F>
int FlowTable<F>::add_key(const Key& key, const FlowAction& action) {
  int32_t pos = rte_hash_add_key(hash_, &key);
  if (pos == -ENOSPC) {
    // Free slots may all be waiting out a grace period.
    wait_grace_period();
    pos = rte_hash_add_key(hash_, &key);
  }
  if (pos < 0) return pos;
  actions_[pos] = action;  // counters start at zero
  return pos;
}

// The action was fully written before this store; add_key_data on a present key replaces its
// data with a release store, so a worker that sees the pointer sees the action.
template <class F>
void FlowTable<F>::publish(const Key& key, int32_t position) {
  rte_hash_add_key_data(hash_, &key, &actions_[position]);
}

template <class F>
int FlowTable<F>::insert(const Key& orig, const FlowAction& orig_action, const Key& reply,
                         const FlowAction& reply_action) {
  if (orig == reply) return -EINVAL;
  if (rte_hash_lookup(hash_, &orig) >= 0 || rte_hash_lookup(hash_, &reply) >= 0) return -EEXIST;
  const int a = add_key(orig, orig_action);
  if (a < 0) return a;
  const int b = add_key(reply, reply_action);
  if (b < 0) {
    // Never published, but a worker may have found the key (with no action): defer the free.
    rte_hash_del_key(hash_, &orig);
    defer_free(a);
    return b;
  }
  publish(orig, a);
  publish(reply, b);
  size_ += 2;
  return 0;
}

template <class F>
int FlowTable<F>::insert_one(const Key& key, const FlowAction& action) {
  if (rte_hash_lookup(hash_, &key) >= 0) return -EEXIST;
  const int pos = add_key(key, action);
  if (pos < 0) return pos;
  publish(key, pos);
  ++size_;
  return 0;
}

template <class F>
void FlowTable<F>::defer_free(int32_t position) {
  if (rte_rcu_qsbr_dq_enqueue(dq_, &position) != 0) {
    wait_grace_period();
    rte_rcu_qsbr_dq_enqueue(dq_, &position);  // the queue was just drained
  }
}

template <class F>
int FlowTable<F>::remove_one(const Key& key) {
  const int32_t pos = rte_hash_del_key(hash_, &key);
  if (pos < 0) return pos;
  defer_free(pos);
  --size_;
  return 0;
}

template <class F>
int FlowTable<F>::remove(const Key& orig, const Key& reply) {
  const int a = remove_one(orig);
  const int b = remove_one(reply);
  return a == 0 || b == 0 ? 0 : -ENOENT;
}

template <class F>
FlowAction* FlowTable<F>::find(const Key& key) const {
  void* data = nullptr;
  return rte_hash_lookup_data(hash_, &key, &data) >= 0 ? static_cast<FlowAction*>(data) : nullptr;
}

template class FlowTable<V4>;
template class FlowTable<V6>;
template class FlowTable<R6>;

}  // namespace tp
