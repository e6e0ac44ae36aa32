// Wakes a thread that sleeps when idle, without a syscall on the busy path: the sleeper raises
// a flag before it sleeps and re-checks its queues; a producer rings (one eventfd write) only when
// it sees the flag, i.e. at most once per sleep. The seq_cst fences make the two "store, then
// load" sequences a Dekker pair, so a wake-up cannot be lost between the re-check and the sleep.
#pragma once

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <ctime>
#include <vector>

namespace tp {

class Doorbell {
 public:
  Doorbell() : fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) { fds_.push_back({fd_, POLLIN, 0}); }
  ~Doorbell() {
    if (fd_ >= 0) close(fd_);
  }
  Doorbell(const Doorbell&) = delete;
  Doorbell& operator=(const Doorbell&) = delete;

  int fd() const { return fd_; }

  // Producer side, after making work visible (e.g. a ring enqueue).
  void ring() {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (sleeping_.load(std::memory_order_relaxed) && sleeping_.exchange(false)) {
      const uint64_t one = 1;
      [[maybe_unused]] ssize_t n = write(fd_, &one, sizeof one);
    }
  }

  // Sleeper side: announce(), re-check for work, then wait() (or cancel() if work appeared).
  void announce() {
    sleeping_.store(true, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
  void cancel() { sleeping_.store(false, std::memory_order_relaxed); }

  // Setup, before the sleeper's first wait(): descriptors whose readability also ends a wait
  // (a port queue's socket, a TAP). Any number of them; the poll set is built here so that
  // waiting allocates nothing.
  void watch(const std::vector<int>& fds) {
    fds_.resize(1);
    for (int fd : fds) fds_.push_back({fd, POLLIN, 0});
  }

  // Sleeps until rung, until a watched descriptor is readable, or for `timeout_us`.
  void wait(uint32_t timeout_us) {
    const timespec ts{static_cast<time_t>(timeout_us / 1000000),
                      static_cast<long>(timeout_us % 1000000) * 1000};
    ppoll(fds_.data(), fds_.size(), &ts, nullptr);
    woken();
  }

  // Sleeps on the bell alone, whatever the watched descriptors say, for as long as `held` (the
  // box is suspended) and not `stop`; the owner clears `held`, then rings. Both are checked
  // again after announcing each sleep, so a ring in between is not lost. The sleeps it took.
  unsigned sleep_while(const std::atomic<bool>& held, const std::atomic<bool>& stop) {
    unsigned sleeps = 0;
    auto holds = [&] {
      return held.load(std::memory_order_relaxed) && !stop.load(std::memory_order_relaxed);
    };
    while (holds()) {
      announce();
      if (!holds()) {
        cancel();
        break;
      }
      pollfd bell{fd_, POLLIN, 0};
      ppoll(&bell, 1, nullptr, nullptr);
      woken();
      ++sleeps;
    }
    return sleeps;
  }

 private:
  void woken() {
    sleeping_.store(false, std::memory_order_relaxed);
    uint64_t drained;
    [[maybe_unused]] ssize_t r = read(fd_, &drained, sizeof drained);
  }

  int fd_;
  std::vector<pollfd> fds_;  // the eventfd first, then the watched descriptors
  std::atomic<bool> sleeping_{false};
};

}  // namespace tp
