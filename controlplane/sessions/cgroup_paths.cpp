#include "cgroup_paths.hpp"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "config.hpp"

namespace tp {

namespace {
constexpr const char* kNftRoot = "/sys/fs/cgroup";
}

std::string CgroupPaths::cgroup2_mount(const std::string& text) {
  // "36 25 0:30 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw": the filesystem type follows
  // the " - " separator, the mount point is the fifth field.
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const auto dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream rest(line.substr(dash + 3));
    std::string fstype;
    rest >> fstype;
    if (fstype != "cgroup2") continue;
    std::istringstream head(line.substr(0, dash));
    std::string id, parent, dev, root, mount;
    if (head >> id >> parent >> dev >> root >> mount && root == "/") return mount;
  }
  return "";
}

CgroupPaths::CgroupPaths(const std::string& mountinfo) {
  std::ifstream in(mountinfo);
  std::stringstream text;
  text << in.rdbuf();
  root_ = cgroup2_mount(text.str());
  const std::string base = kNftRoot;
  if (root_.empty())
    error_ = "no cgroup2 hierarchy is mounted";
  else if (root_ == base)
    nft_prefix_ = "";
  else if (root_.compare(0, base.size() + 1, base + "/") == 0 &&
           conf::cgroup_path_refusal(root_.substr(base.size() + 1)).empty())
    nft_prefix_ = root_.substr(base.size() + 1) + "/";  // quoted into nft's text: checked
  else
    error_ = "cgroup2 is mounted at " + root_ + ", not at or under " + base +
             " where nftables looks for cgroups";
}

std::optional<CgroupRef> CgroupPaths::resolve(const std::string& path) const {
  if (!error_.empty() || path.empty()) return std::nullopt;
  struct stat st {};
  if (::stat((root_ + "/" + path).c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return std::nullopt;
  CgroupRef r;
  r.nft_path = nft_prefix_ + path;
  r.level = 1;
  for (char c : path) r.level += c == '/';
  r.id = st.st_ino;
  return r;
}

std::map<std::string, CgroupRef> CgroupPaths::resolve_all(
    const std::vector<std::string>& paths) const {
  std::map<std::string, CgroupRef> out;
  for (const auto& p : paths)
    if (auto r = resolve(p)) out.emplace(p, *r);
  return out;
}

}  // namespace tp
