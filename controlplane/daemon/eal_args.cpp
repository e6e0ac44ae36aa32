#include "eal_args.hpp"

#include <fstream>
#include <regex>
#include <sstream>

namespace tp {

unsigned hugepages_free_mb() {
  std::ifstream mounts("/proc/mounts");
  std::string line;
  bool mounted = false;
  while (std::getline(mounts, line))
    mounted = mounted || line.find(" hugetlbfs ") != std::string::npos;
  if (!mounted) return 0;
  std::ifstream meminfo("/proc/meminfo");
  unsigned long free_pages = 0, page_kb = 0;
  while (std::getline(meminfo, line)) {
    std::istringstream s(line);
    std::string key;
    s >> key;
    if (key == "HugePages_Free:") s >> free_pages;
    if (key == "Hugepagesize:") s >> page_kb;
  }
  return static_cast<unsigned>(free_pages * page_kb / 1024);
}

bool has_pci_port(const conf::Config& cfg) {
  static const std::regex pci("^([0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\\.[0-7]");
  for (const auto& p : cfg.ports)
    if (std::regex_search(p.device, pci)) return true;
  return false;
}

std::vector<std::string> eal_args(const conf::Config& cfg, const std::string& program) {
  const auto& dp = cfg.dataplane;
  std::string lcores = std::to_string(dp.main_lcore);
  for (unsigned lc : dp.worker_lcores) lcores += "," + std::to_string(lc);
  std::vector<std::string> a = {program,
                                "-l",
                                lcores,
                                "--main-lcore",
                                std::to_string(dp.main_lcore),
                                "-m",
                                std::to_string(dp.memory_mb),
                                "--no-telemetry",
                                "--log-level=*:notice",
                                "--file-prefix=tetherpath"};
  const bool huge =
      dp.hugepages == conf::Hugepages::on ||
      (dp.hugepages == conf::Hugepages::automatic && hugepages_free_mb() >= dp.memory_mb);
  if (huge) {
    a.push_back("--in-memory");
  } else {
    a.push_back("--no-huge");
    a.push_back("--no-shconf");
  }
  if (!has_pci_port(cfg)) a.push_back("--no-pci");
  return a;
}

}  // namespace tp
