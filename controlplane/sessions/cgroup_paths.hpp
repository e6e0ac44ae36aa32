// Where the box's own applications' cgroups are, for sessions that select them (match.cgroups).
// nftables' `socket cgroupv2` takes a path under /sys/fs/cgroup and turns it into the cgroup's
// id when the rule is loaded: a cgroup that does not exist then cannot be named (the whole
// table would be refused), and one made again (a service restarted) has a new id the loaded
// rule does not know. So each path is resolved here, the classifier names only the cgroups that
// exist, and a change of what exists (or of an id) makes it write its table again.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace tp {

struct CgroupRef {
  std::string nft_path;  // as nft wants it: relative to /sys/fs/cgroup
  int level = 0;         // its depth below the cgroup2 root (nft's `level`)
  uint64_t id = 0;       // the directory's inode: the cgroup's id
  bool operator==(const CgroupRef&) const = default;
};

class CgroupPaths {
 public:
  // The cgroup2 hierarchy as this process sees it: the first cgroup2 mount in `mountinfo`.
  explicit CgroupPaths(const std::string& mountinfo = "/proc/self/mountinfo");
  // A path below the cgroup2 root ("system.slice/telematics.service"), if it exists now.
  std::optional<CgroupRef> resolve(const std::string& path) const;
  // Those of `paths` that exist now.
  std::map<std::string, CgroupRef> resolve_all(const std::vector<std::string>& paths) const;
  // Empty, or why no cgroup can be matched here (no cgroup2, or not under /sys/fs/cgroup).
  const std::string& error() const { return error_; }
  const std::string& root() const { return root_; }

  // The cgroup2 mount point in a mountinfo text (empty: none).
  static std::string cgroup2_mount(const std::string& mountinfo_text);

 private:
  std::string root_;        // where cgroup2 is mounted
  std::string nft_prefix_;  // the root relative to /sys/fs/cgroup ("" or "unified/")
  std::string error_;
};

}  // namespace tp
