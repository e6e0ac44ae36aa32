// EAL's command line, derived from the configuration: lcores, memory, hugepages if mounted and
// free (in memory, so no hugepage file outlives the process), otherwise --no-huge.
#pragma once

#include <string>
#include <vector>

#include "config.hpp"

namespace tp {

std::vector<std::string> eal_args(const conf::Config& cfg, const std::string& program);

// Whether any port's device is a PCI address (DBDF or BDF) rather than a virtual device.
bool has_pci_port(const conf::Config& cfg);

// Free hugepage memory on a mounted hugetlbfs, in MiB (0 if none is mounted).
unsigned hugepages_free_mb();

}  // namespace tp
