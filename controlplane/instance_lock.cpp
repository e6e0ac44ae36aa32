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
  const std::string pid = std::to_string(getpid());
  if (ftruncate(fd_, 0) != 0 || pwrite(fd_, pid.c_str(), pid.size(), 0) < 0) {
    // The lock holds either way; the pid is only for the message above.
  }
}

InstanceLock::~InstanceLock() {
  if (fd_ < 0) return;
  unlink(path_.c_str());
  close(fd_);
}

}  // namespace tp
