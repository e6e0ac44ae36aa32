// Tests that create kernel interfaces do so in a network namespace of their own.
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cstdlib>

namespace tp::test {

// The calling thread (the main lcore) moves into a new network namespace, and back when done. The
// namespace and its TAPs go away with their last user: this scope, or the process if it dies.
class PrivateNetns {
 public:
  PrivateNetns() : home_(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)) {
    ok_ = home_ >= 0 && unshare(CLONE_NEWNET) == 0;
  }
  ~PrivateNetns() {
    if (home_ < 0) return;
    if (setns(home_, CLONE_NEWNET) != 0) std::abort();  // the other tests must not run in here
    close(home_);
  }
  PrivateNetns(const PrivateNetns&) = delete;
  PrivateNetns& operator=(const PrivateNetns&) = delete;
  bool ok() const { return ok_; }

 private:
  int home_;
  bool ok_ = false;
};

}  // namespace tp::test
