// The fast-path flow table of one address family: an rte_hash with lock-free reader concurrency
// mapping each flow direction's key to a FlowAction. Actions live in an array indexed by the
// key's rte_hash position, so a key slot and its action are allocated and freed together and no
// second allocator exists.
//
// Threads: any number of workers call lookup_bulk(); exactly one control thread calls everything
// else. Workers never block. A deleted entry's key slot (and so its action) is reused only after
// every registered worker has reported a quiescent state (rte_rcu_qsbr defer queue), so a worker
// that found an action before the delete can finish its burst with it.
#pragma once

#include <rte_hash.h>
#include <rte_rcu_qsbr.h>

#include <cstdint>
#include <memory>

#include "flow_action.hpp"
#include "flow_key.hpp"

namespace tp {

template <class F>
class FlowTable {
 public:
  using Key = typename F::Key;

  // nullptr on failure, with rte_errno set. `capacity` counts directions (two per flow).
  static std::unique_ptr<FlowTable> create(const char* name, uint32_t capacity, rte_rcu_qsbr* qsv,
                                           int socket_id);
  ~FlowTable();
  FlowTable(const FlowTable&) = delete;
  FlowTable& operator=(const FlowTable&) = delete;

  // Worker side. `n` <= RTE_HASH_LOOKUP_BULK_MAX. Bit i of the returned mask is set when keys[i]
  // was found; actions[i] is then valid until the caller's next quiescent-state report. A key
  // still being installed has no action yet and counts as a miss.
  uint64_t lookup_bulk(const Key** keys, uint32_t n, FlowAction** actions) const {
    uint64_t hits = 0;
    rte_hash_lookup_bulk_data(hash_, reinterpret_cast<const void**>(keys), n, &hits,
                              reinterpret_cast<void**>(actions));
    for (uint64_t m = hits; m; m &= m - 1) {
      const int i = __builtin_ctzll(m);
      if (!actions[i]) hits &= ~(uint64_t{1} << i);
    }
    return hits;
  }

  // Control side. Inserts both directions or neither: -EEXIST if either key is present, -ENOSPC
  // when full; if the second insert fails the first is rolled back.
  int insert(const Key& orig, const FlowAction& orig_action, const Key& reply,
             const FlowAction& reply_action);
  // One key alone (address rules, which have no reverse direction). -EEXIST, -ENOSPC.
  int insert_one(const Key& key, const FlowAction& action);
  // Removes both directions; -ENOENT if neither was present.
  int remove(const Key& orig, const Key& reply);
  // Removes one direction; used to clean up after partial state. -ENOENT if absent.
  int remove_one(const Key& key);
  FlowAction* find(const Key& key) const;
  // Returns slots whose grace period has passed; also runs on demand when the table is full.
  void reclaim();

  // Present directions (deleted ones awaiting their grace period are not counted).
  uint32_t size() const { return size_; }
  uint32_t capacity() const { return capacity_; }
  // Bytes of DPDK heap this table took at creation: hash buckets, key store, free-slot ring,
  // actions and the defer queue.
  std::size_t memory_bytes() const { return memory_bytes_; }

  // Calls fn(const Key&, FlowAction&) for every present direction. Control thread only.
  template <class Fn>
  void for_each(Fn&& fn) const {
    const void* key;
    void* data;
    uint32_t next = 0;
    while (rte_hash_iterate(hash_, &key, &data, &next) >= 0)
      fn(*static_cast<const Key*>(key), *static_cast<FlowAction*>(data));
  }

 private:
  FlowTable() = default;
  int add_key(const Key& key, const FlowAction& action);
  void publish(const Key& key, int32_t position);
  void defer_free(int32_t position);
  void wait_grace_period();
  static void free_deferred(void* self, void* elems, unsigned int n);

  rte_hash* hash_ = nullptr;
  rte_rcu_qsbr* qsv_ = nullptr;
  rte_rcu_qsbr_dq* dq_ = nullptr;
  FlowAction* actions_ = nullptr;  // indexed by rte_hash key position
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
