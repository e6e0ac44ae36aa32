#include "flow_table.hpp"

#include <rte_errno.h>
#include <rte_hash_crc.h>
#include <rte_malloc.h>

#include <cerrno>
#include <new>
#include <string>

namespace tp {
namespace {

// What the defer queue holds for one deleted direction.
struct Deferred {
  int32_t key_position;
  uint32_t action_index;
};
static_assert(sizeof(Deferred) % 4 == 0, "rte_rcu_qsbr_dq element size must be a multiple of 4");

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

  t->actions_ = static_cast<FlowAction*>(
      rte_zmalloc_socket("flow_actions", sizeof(FlowAction) * capacity, 64, socket_id));
  if (!t->actions_) {
    rte_errno = ENOMEM;
    return nullptr;
  }
  for (uint32_t i = 0; i < capacity; ++i) new (&t->actions_[i]) FlowAction();
  t->capacity_ = capacity;

  std::string dq_name = std::string(name) + "_dq";
  rte_rcu_qsbr_dq_parameters dp{};
  dp.name = dq_name.c_str();
  dp.flags = RTE_RCU_QSBR_DQ_MT_UNSAFE;  // single writer
  dp.size = capacity;
  dp.esize = sizeof(Deferred);
  dp.trigger_reclaim_limit = 0;  // try a non-blocking reclaim on every delete
  dp.max_reclaim_size = 32;
  dp.free_fn = &FlowTable::free_deferred;
  dp.p = t.get();
  dp.v = qsv;
  t->qsv_ = qsv;
  t->dq_ = rte_rcu_qsbr_dq_create(&dp);
  if (!t->dq_) return nullptr;

  t->free_actions_.reserve(capacity);
  for (uint32_t i = capacity; i-- > 0;) t->free_actions_.push_back(i);
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
  auto* d = static_cast<Deferred*>(elems);
  for (unsigned int i = 0; i < n; ++i) {
    rte_hash_free_key_with_position(t->hash_, d[i].key_position);
    t->free_actions_.push_back(d[i].action_index);
  }
}

template <class F>
void FlowTable<F>::reclaim() {
  unsigned int freed, pending, available;
  rte_rcu_qsbr_dq_reclaim(dq_, capacity_, &freed, &pending, &available);
}

template <class F>
int FlowTable<F>::alloc_action(const FlowAction& a, FlowAction** out) {
  if (free_actions_.empty()) reclaim();
  if (free_actions_.empty() && size_ < capacity_) {
    // Everything free is still in its grace period: wait for one (every online worker reports a
    // quiescent state once per loop) rather than refuse the flow.
    rte_rcu_qsbr_synchronize(qsv_, RTE_QSBR_THRID_INVALID);
    reclaim();
  }
  if (free_actions_.empty()) return -ENOSPC;
  FlowAction* slot = &actions_[free_actions_.back()];
  free_actions_.pop_back();
  *slot = a;  // counters start at zero
  *out = slot;
  return 0;
}

template <class F>
int FlowTable<F>::insert(const Key& orig, const FlowAction& orig_action, const Key& reply,
                         const FlowAction& reply_action) {
  if (rte_hash_lookup(hash_, &orig) >= 0 || rte_hash_lookup(hash_, &reply) >= 0) return -EEXIST;
  if (orig == reply) return -EINVAL;
  FlowAction* a = nullptr;
  FlowAction* b = nullptr;
  if (int rc = alloc_action(orig_action, &a); rc < 0) return rc;
  if (int rc = alloc_action(reply_action, &b); rc < 0) {
    free_actions_.push_back(static_cast<uint32_t>(a - actions_));
    return rc;
  }
  // The action is fully written before add_key_data, which publishes the entry with release
  // ordering; a worker that finds the key therefore sees the action's contents.
  if (int rc = rte_hash_add_key_data(hash_, &orig, a); rc < 0) {
    free_actions_.push_back(static_cast<uint32_t>(a - actions_));
    free_actions_.push_back(static_cast<uint32_t>(b - actions_));
    return rc;
  }
  ++size_;
  if (int rc = rte_hash_add_key_data(hash_, &reply, b); rc < 0) {
    remove_one(orig);  // `a` may already be in use by a worker: it goes through the defer queue
    free_actions_.push_back(static_cast<uint32_t>(b - actions_));
    return rc;
  }
  ++size_;
  return 0;
}

template <class F>
int FlowTable<F>::remove_one(const Key& key) {
  void* data = nullptr;
  if (rte_hash_lookup_data(hash_, &key, &data) < 0) return -ENOENT;
  const int32_t pos = rte_hash_del_key(hash_, &key);
  if (pos < 0) return pos;
  Deferred d{pos, static_cast<uint32_t>(static_cast<FlowAction*>(data) - actions_)};
  // The queue has one place per key slot and a slot is queued at most once, so this cannot fail.
  rte_rcu_qsbr_dq_enqueue(dq_, &d);
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

}  // namespace tp
