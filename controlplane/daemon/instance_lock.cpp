#include "instance_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace tp {

InstanceLock::InstanceLock(const std::string& state_dir) : path_(state_dir + "/tetherpath.lock") {
  std::error_code ec;
  std::filesystem::create_directories(state_dir, ec);
  if (ec)
    throw std::runtime_error("cannot create state directory " + state_dir + ": " + ec.message());
  // The file stays when the owner exits (see the destructor), but something else may remove or
  // replace it between our open and our flock (an older tetherpath unlinked it on exit; an
  // administrator may): a lock on an inode the path no longer names excludes nobody. So the lock
  // counts only if the path still names the locked file afterwards; otherwise try again.
  for (int attempt = 0;; ++attempt) {
    fd_ = open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw std::runtime_error("cannot open " + path_ + ": " + std::strerror(errno));
    if (flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      char buf[32] = {};
      const ssize_t n = pread(fd_, buf, sizeof buf - 1, 0);
      close(fd_);
      fd_ = -1;
      throw std::runtime_error("another tetherpath is already running (pid " +
                               std::string(n > 0 ? buf : "unknown") + ", lock " + path_ + ")");
    }
    struct stat held, named;
    if (fstat(fd_, &held) == 0 && stat(path_.c_str(), &named) == 0 && held.st_dev == named.st_dev &&
        held.st_ino == named.st_ino)
      break;
    close(fd_);
    fd_ = -1;
    if (attempt == 100)
      throw std::runtime_error("cannot lock " + path_ + ": it keeps being removed or replaced");
  }
  const std::string pid = std::to_string(getpid());
  if (ftruncate(fd_, 0) != 0 || pwrite(fd_, pid.c_str(), pid.size(), 0) < 0) {
    // The lock holds either way; the pid is only for the message above.
  }
}

// Closing releases the lock; the file stays. Unlinking it here would let an instance that opened
// it just before (and locks it right after) hold a lock on a nameless inode while a third one
// creates a new file under the name and locks that: two daemons.
InstanceLock::~InstanceLock() {
  if (fd_ >= 0) close(fd_);
}

}  // namespace tp
