// The kernel engine's state in bpffs, for a daemon that must survive its own crash or restart
// without a gap in forwarding: the maps (and, for inspection, the programs) are pinned under
// <bpffs>/tetherpath/v<layout version>, so that the next run finds the flows the attached programs
// are still forwarding and takes them over. A layout change goes to a new directory; the old one
// is removed by the daemon once its own programs are attached (the flows come back from
// conntrack). Control thread only.
#pragma once

#include <array>
#include <cstddef>
#include <cstring>
#include <set>
#include <string>
#include <vector>

namespace tp::pinned {

// <bpffs_root>/tetherpath/v<version>
std::string dir_for(const std::string& bpffs_root, unsigned version);

// Makes `dir` (and its parents) after checking that it lies on a BPF filesystem: the nearest
// existing ancestor must be bpffs, so that nothing is created on another file system. False with
// `error` saying how to mount one.
bool make_dir(const std::string& dir, std::string& error);

// The version directories under <bpffs_root>/tetherpath other than v<version>.
std::vector<std::string> stale_dirs(const std::string& bpffs_root, unsigned version);

// Unpins everything in `dir` (maps and programs live on while something holds them: an attached
// program, a process's descriptor) and removes it. 0 or -errno of the first failure; a missing
// directory is 0.
int remove_dir(const std::string& dir);

// The flow or rule keys a previous run left in a pinned map: read once at start-up, erased as this
// run installs or removes them; what is left when the daemon has seen all of conntrack is deleted.
template <typename Key>
class InheritedKeys {
 public:
  // Every key of the hash map `fd`: -errno if the iteration failed (the set holds what was read).
  int load(int fd);
  bool contains(const Key& k) const { return keys_.count(bytes(k)) != 0; }
  void erase(const Key& k) { keys_.erase(bytes(k)); }
  std::size_t size() const { return keys_.size(); }
  // Deletes every key still held from `fd` (one atomic delete each) and forgets them all; how
  // many entries went.
  std::size_t drop(int fd);

 private:
  using Bytes = std::array<unsigned char, sizeof(Key)>;
  static Bytes bytes(const Key& k) {
    Bytes b;
    std::memcpy(b.data(), &k, sizeof(Key));
    return b;
  }
  std::set<Bytes> keys_;
};

}  // namespace tp::pinned
