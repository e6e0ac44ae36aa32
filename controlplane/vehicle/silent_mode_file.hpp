// Watches the kernel's silent-mode file (Android Automotive's
// /sys/kernel/silent_boot/pm_silentmode_kernel_state, written by the power manager) with inotify
// on its directory: a write, or the file made anew or renamed into place, reads it again. No
// timer: nothing wakes the daemon while the file stays as it is (a suspended box sleeps).
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "asio.hpp"

namespace tp {

class SilentModeFile {
 public:
  // `on_change` gets the new state each time it differs from the last one read.
  SilentModeFile(boost::asio::io_context& io, std::string path,
                 std::function<void(bool silent)> on_change);
  ~SilentModeFile();
  SilentModeFile(const SilentModeFile&) = delete;
  SilentModeFile& operator=(const SilentModeFile&) = delete;

  bool silent() const { return silent_; }
  bool watched() const { return watched_; }
  const std::string& error() const { return error_; }  // why it is not watched
  // Reads the file now (start, resume): on_change if it differs.
  void read();

 private:
  void wait();

  std::string path_, name_;
  std::function<void(bool)> on_change_;
  boost::asio::posix::stream_descriptor sd_;
  bool silent_ = false;
  bool watched_ = false;
  std::string error_;
};

}  // namespace tp
