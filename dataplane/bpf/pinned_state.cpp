#include "pinned_state.hpp"

#include <bpf/bpf.h>
#include <dirent.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "flow_key.hpp"

namespace tp::pinned {

namespace {

constexpr const char* kBase = "tetherpath";

std::string parent_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

std::string dir_for(const std::string& bpffs_root, unsigned version) {
  std::string root = bpffs_root;
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  return root + "/" + kBase + "/v" + std::to_string(version);
}

bool make_dir(const std::string& dir, std::string& error) {
  // The nearest existing ancestor decides the file system the directories are made on.
  std::string probe = dir;
  struct stat st {};
  while (stat(probe.c_str(), &st) != 0 && probe != "/" && probe != ".") probe = parent_of(probe);
  struct statfs fs {};
  if (statfs(probe.c_str(), &fs) != 0 || fs.f_type != BPF_FS_MAGIC) {
    error = "cannot pin the BPF engine's state under " + dir + ": " + probe +
            " is not on a BPF filesystem (bpffs); mount one first (mount -t bpf bpf /sys/fs/bpf)";
    return false;
  }
  // Parents first; each may already exist (another run, another version).
  for (size_t pos = probe.size(); pos != std::string::npos && pos <= dir.size();
       pos = dir.find('/', pos + 1)) {
    const std::string part = dir.substr(0, pos);
    if (part.size() <= probe.size()) continue;
    if (mkdir(part.c_str(), 0700) != 0 && errno != EEXIST) {
      error = "cannot make " + part + ": " + std::strerror(errno);
      return false;
    }
  }
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    error = "cannot make " + dir + ": " + std::strerror(errno);
    return false;
  }
  return true;
}

std::vector<std::string> stale_dirs(const std::string& bpffs_root, unsigned version) {
  std::vector<std::string> stale;
  const std::string current = dir_for(bpffs_root, version);
  const std::string base = parent_of(current);
  DIR* d = opendir(base.c_str());
  if (!d) return stale;
  while (const dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name.size() < 2 || name[0] != 'v' ||
        name.find_first_not_of("0123456789", 1) != std::string::npos)
      continue;
    const std::string path = base + "/" + name;
    if (path != current) stale.push_back(path);
  }
  closedir(d);
  return stale;
}

int remove_dir(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (!d) return errno == ENOENT ? 0 : -errno;
  int result = 0;
  while (const dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    if (unlink((dir + "/" + name).c_str()) != 0 && result == 0) result = -errno;
  }
  closedir(d);
  if (rmdir(dir.c_str()) != 0 && result == 0) result = -errno;
  return result;
}

template <typename Key>
int InheritedKeys<Key>::load(int fd) {
  Key key{}, next{};
  const Key* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    keys_.insert(bytes(next));
    key = next;
    prev = &key;
  }
  return errno == ENOENT ? 0 : -errno;
}

template <typename Key>
std::size_t InheritedKeys<Key>::drop(int fd) {
  std::size_t n = 0;
  for (const Bytes& k : keys_)
    if (bpf_map_delete_elem(fd, k.data()) == 0) ++n;
  keys_.clear();
  return n;
}

template class InheritedKeys<FlowKey4>;
template class InheritedKeys<FlowKey6>;
template class InheritedKeys<RuleKey6>;

}  // namespace tp::pinned
