// Batched map operations: a keepalive round asks for every offloaded flow's use, and a policy
// reset removes thousands of flows, which per key is a system call per flow direction.
// Reads: one dump of the flow map in batches (BPF_MAP_LOOKUP_BATCH, Linux 5.6) costs a system
// call per batch of entries instead; its entries are matched to the keys asked for through a
// hash table. Removals: BPF_MAP_DELETE_BATCH over the keys. Kernels without batch operations
// get the per-key calls.
#include <bpf/bpf.h>

#include <cerrno>
#include <cstring>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "bpf_fast_path.hpp"
#include "maps.h"

namespace tp {

FlowUsage usage_of_action(const tp_action& a);  // bpf_fast_path.cpp

namespace {

// The kernel's errno for an operation a map type does not implement.
constexpr int kEnotsupp = 524;
constexpr uint32_t kFirstBatch = 8192;  // entries per call; grown when a bucket holds more

// Below this many keys, a lookup each costs less than walking the map.
constexpr size_t kBatchFrom = 32;

template <typename Key>
struct KeyBytesHash {
  size_t operator()(const Key& k) const {
    return std::hash<std::string_view>()(
        std::string_view(reinterpret_cast<const char*>(&k), sizeof(k)));
  }
};

}  // namespace

template <typename Key>
void BpfFastPath::read_usage_batched(int fd, std::span<const Key> keys,
                                     std::span<std::optional<FlowUsage>> out) const {
  const size_t n = std::min(keys.size(), out.size());
  for (size_t i = 0; i < n; ++i) out[i].reset();
  auto one_by_one = [&] {
    for (size_t i = 0; i < n; ++i) out[i] = usage_of(fd, &keys[i]);
  };
  if (n < kBatchFrom) return one_by_one();
  std::unordered_map<Key, size_t, KeyBytesHash<Key>> wanted;
  wanted.reserve(n);
  for (size_t i = 0; i < n; ++i) wanted.emplace(keys[i], i);

  uint32_t batch = kFirstBatch;
  std::vector<Key> kbuf(batch);
  std::vector<tp_action> vbuf(batch);
  uint32_t token = 0;  // a hash map's batch position: a bucket index
  bool first = true;
  bpf_map_batch_opts opts{};
  opts.sz = sizeof(opts);
  for (;;) {
    uint32_t count = batch;
    const int err = bpf_map_lookup_batch(fd, first ? nullptr : &token, &token, kbuf.data(),
                                         vbuf.data(), &count, &opts);
    const int e = err ? errno : 0;
    if (err && e == ENOSPC && count == 0) {
      // One bucket holds more entries than a batch: a bigger batch, from the same bucket.
      batch *= 2;
      kbuf.resize(batch);
      vbuf.resize(batch);
      continue;
    }
    if (err && e != ENOENT) {
      if (first && (e == EINVAL || e == kEnotsupp || e == EOPNOTSUPP)) return one_by_one();
      // A failure half-way: what the dump did not reach is asked for by key.
      for (size_t i = 0; i < n; ++i)
        if (!out[i]) out[i] = usage_of(fd, &keys[i]);
      return;
    }
    for (uint32_t j = 0; j < count; ++j) {
      auto it = wanted.find(kbuf[j]);
      if (it != wanted.end()) out[it->second] = usage_of_action(vbuf[j]);
    }
    if (err) return;  // ENOENT: the dump reached the map's end
    first = false;
  }
}

template <typename Key>
void BpfFastPath::delete_batched(int fd, std::span<const Key> keys) {
  size_t at = 0;
  bpf_map_batch_opts opts{};
  opts.sz = sizeof(opts);
  while (at < keys.size()) {
    uint32_t count = static_cast<uint32_t>(keys.size() - at);
    const int err = bpf_map_delete_batch(fd, &keys[at], &count, &opts);
    // A key already gone stops the batch there (count: those deleted before it): past it. Any
    // other error (no batch deletes on this kernel or map) may leave count as it was passed:
    // the rest one by one, from where this call began.
    if (err && errno != ENOENT) break;
    at += count;
    if (err) ++at;
  }
  for (; at < keys.size(); ++at) bpf_map_delete_elem(fd, &keys[at]);
}

template <typename Key>
void BpfFastPath::remove_pairs(int fd, pinned::InheritedKeys<Key>& inherited,
                               std::span<const std::pair<Key, Key>> flows) {
  if (frozen_) return;
  std::vector<Key> keys;
  keys.reserve(flows.size() * 2);
  for (const auto& [orig, reply] : flows) {
    keys.push_back(orig);
    keys.push_back(reply);
    inherited.erase(orig);
    inherited.erase(reply);
  }
  delete_batched(fd, std::span<const Key>(keys));
}

void BpfFastPath::remove_many(std::span<const std::pair<FlowKey4, FlowKey4>> flows) {
  remove_pairs(maps_.flows4, inherited4_, flows);
}

void BpfFastPath::remove_many(std::span<const std::pair<FlowKey6, FlowKey6>> flows) {
  remove_pairs(maps_.flows6, inherited6_, flows);
}

void BpfFastPath::read_usage(std::span<const FlowKey4> keys,
                             std::span<std::optional<FlowUsage>> out) const {
  read_usage_batched(maps_.flows4, keys, out);
}

void BpfFastPath::read_usage(std::span<const FlowKey6> keys,
                             std::span<std::optional<FlowUsage>> out) const {
  read_usage_batched(maps_.flows6, keys, out);
}

}  // namespace tp
