#include "daemon_log.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace tp::log {

bool to_journal() {
  // systemd's documented test: JOURNAL_STREAM names the stream's device and inode; a stderr
  // redirected elsewhere by the service (or a child that inherited the variable) differs.
  static const bool journal = [] {
    const char* env = std::getenv("JOURNAL_STREAM");
    struct stat st {};
    if (!env || fstat(STDERR_FILENO, &st) != 0) return false;
    unsigned long long dev = 0, ino = 0;
    if (std::sscanf(env, "%llu:%llu", &dev, &ino) != 2) return false;
    return dev == static_cast<unsigned long long>(st.st_dev) &&
           ino == static_cast<unsigned long long>(st.st_ino);
  }();
  return journal;
}

std::string format(Priority p, const std::string& text, bool journal) {
  std::string line;
  if (journal) line = "<" + std::to_string(static_cast<int>(p)) + ">";
  line += "tetherpath: ";
  line += text;
  line += '\n';
  return line;
}

void write(Priority p, const std::string& text) {
  const std::string line = format(p, text, to_journal());
  // One write(): a log line is never split by another thread's. A short write to a full pipe
  // loses the rest of the line, never the daemon.
  const ssize_t rc = ::write(STDERR_FILENO, line.data(), line.size());
  (void)rc;
}

}  // namespace tp::log
