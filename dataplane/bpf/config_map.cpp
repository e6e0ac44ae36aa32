// tp_config's writes (maps.h): the published bank and the daemon's heartbeat. They go through the
// array's mapping, one field at a time: a map update copies the whole value with memcpy, which
// does not promise to write an 8-byte field in one store, and a program that read a torn
// heartbeat would punt for a live daemon or forward for a dead one. Should the mapping be refused,
// a map update of the whole value is the fallback.
#include <bpf/bpf.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstring>

#include "bpf_fast_path.hpp"
#include "maps.h"

namespace tp {

BpfFastPath::Mapping::~Mapping() {
  if (addr) munmap(addr, len);
}

void* BpfFastPath::config_value() {
  if (!config_map_.addr) {
    const size_t len = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    void* a = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, maps_.config, 0);
    if (a == MAP_FAILED) return nullptr;
    config_map_.addr = a;
    config_map_.len = len;
  }
  return config_map_.addr;
}

bool BpfFastPath::store_bank(uint32_t bank) {
  if (void* v = config_value()) {
    std::atomic_ref<uint32_t>(static_cast<tp_config*>(v)->bank)
        .store(bank, std::memory_order_release);
    return true;
  }
  const uint32_t zero = 0;
  tp_config cfg{};
  if (bpf_map_lookup_elem(maps_.config, &zero, &cfg) != 0) return false;
  cfg.bank = bank;
  return bpf_map_update_elem(maps_.config, &zero, &cfg, BPF_ANY) == 0;
}

void BpfFastPath::store_config_u64(size_t offset, uint64_t value) {
  if (void* v = config_value()) {
    std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(static_cast<char*>(v) + offset))
        .store(value, std::memory_order_release);
    return;
  }
  const uint32_t zero = 0;
  tp_config cfg{};
  if (bpf_map_lookup_elem(maps_.config, &zero, &cfg) != 0) return;
  std::memcpy(reinterpret_cast<char*>(&cfg) + offset, &value, sizeof(value));
  bpf_map_update_elem(maps_.config, &zero, &cfg, BPF_ANY);
}

void BpfFastPath::heartbeat() { store_config_u64(offsetof(tp_config, heartbeat_ns), clock_ns()); }

void BpfFastPath::set_heartbeat_bound(uint32_t ms) {
  heartbeat();  // a new bound never meets a heartbeat older than itself
  store_config_u64(offsetof(tp_config, heartbeat_bound_ns), uint64_t{ms} * 1000000);
}

}  // namespace tp
