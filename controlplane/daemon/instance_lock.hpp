// One daemon per state directory: an flock on STATE_DIR/tetherpath.lock, which the kernel releases
// when the process dies however it dies, holding the owner's pid for the error message.
#pragma once

#include <string>

namespace tp {

class InstanceLock {
 public:
  // Throws std::runtime_error naming the running instance's pid when the lock is taken.
  explicit InstanceLock(const std::string& state_dir);
  ~InstanceLock();
  InstanceLock(const InstanceLock&) = delete;
  InstanceLock& operator=(const InstanceLock&) = delete;

 private:
  int fd_ = -1;
  std::string path_;
};

}  // namespace tp
