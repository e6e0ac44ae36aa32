#include "silent_mode_file.hpp"

#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include "vehicle_modes.hpp"

namespace tp {

SilentModeFile::SilentModeFile(boost::asio::io_context& io, std::string path,
                               std::function<void(bool)> on_change)
    : path_(std::move(path)), on_change_(std::move(on_change)), sd_(io) {
  const std::size_t slash = path_.rfind('/');
  const std::string dir = slash == 0 ? "/" : path_.substr(0, slash);
  name_ = path_.substr(slash + 1);
  const int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) {
    error_ = std::string("inotify: ") + std::strerror(errno);
    return;
  }
  // The directory, not the file: a file replaced (rename) or made later is seen too. Whole
  // writes only (closed after writing, renamed into place), not each write(): a writer that
  // truncates first would flip the state twice.
  if (inotify_add_watch(fd, dir.c_str(), IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM) <
      0) {
    error_ = dir + ": " + std::strerror(errno);
    ::close(fd);
    return;
  }
  sd_.assign(fd);
  watched_ = true;
  std::ifstream in(path_);
  silent_ = in && silent_mode_text(std::string(std::istreambuf_iterator<char>(in), {}));
  wait();
}

SilentModeFile::~SilentModeFile() {
  boost::system::error_code ec;
  sd_.close(ec);
}

void SilentModeFile::read() {
  std::ifstream in(path_);
  const bool now = in && silent_mode_text(std::string(std::istreambuf_iterator<char>(in), {}));
  if (now == silent_) return;
  silent_ = now;
  on_change_(now);
}

void SilentModeFile::wait() {
  sd_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                 [this](const boost::system::error_code& ec) {
                   if (ec) return;
                   alignas(inotify_event) char buf[4096];
                   bool ours = false;
                   ssize_t n;
                   while ((n = ::read(sd_.native_handle(), buf, sizeof buf)) > 0)
                     for (ssize_t off = 0; off < n;) {
                       const auto* e = reinterpret_cast<const inotify_event*>(buf + off);
                       ours = ours || (e->len && name_ == e->name) || (e->mask & IN_Q_OVERFLOW);
                       off += static_cast<ssize_t>(sizeof(inotify_event) + e->len);
                     }
                   wait();  // first: what read() sets off may throw, the watch stays
                   if (ours) read();
                 });
}

}  // namespace tp
