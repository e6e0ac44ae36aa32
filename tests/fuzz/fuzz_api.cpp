// libFuzzer target: arbitrary bytes sent as one client's request stream through the management
// API's real transport (a Unix socket, the Boost.Asio server) into the real operations (OffloadApi
// over a host that records nothing). Findings: a crash, a sanitizer report, an exception out of
// the loop, a reply that is not one valid JSON object per line, or more replies than requests.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "api_server.hpp"
#include "config.hpp"
#include "offload_api.hpp"

using namespace tp;

namespace {

struct FuzzHost : OffloadHost {
  void start_offload() override {}
  void stop_offload() override {}
  void roles_changed() override {}
  ByteCounts forwarded_bytes(uint8_t) override { return {}; }
  void arm_limit(uint8_t, uint64_t, uint64_t) override {}
  void disarm_limit(uint8_t) override {}
  uint64_t limit_used(uint8_t) override { return 0; }
  Json describe(const std::string& what) override { return Json{{"what", what}}; }
  std::string reload() override { return "fuzz.yaml:1:1: bad byte \xff here"; }
  bool kernel_has_interface(const std::string& i) override { return i == "wlan1"; }
};

struct World {
  boost::asio::io_context io;
  FuzzHost host;
  conf::Config cfg = conf::load_string(
      "ports:\n"
      "  - {name: modem0, role: upstream, device: a}\n"
      "  - {name: wifi0, role: downstream, device: b}\n",
      "fuzz.yaml");
  OffloadApi api{cfg, host};
  std::unique_ptr<ApiServer> server;
  std::string path;
};
World* g = nullptr;

[[noreturn]] void finding(const char* what, const std::string& detail) {
  std::fprintf(stderr, "finding: %s: %s\n", what, detail.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g = new World;
  g->path = "/tmp/tp-fuzz-api-" + std::to_string(getpid()) + ".sock";
  conf::ApiConfig a;
  a.socket = g->path;
  a.idle_timeout_s = 0;
  g->server = std::make_unique<ApiServer>(
      g->io, a, [](const Json& r, const tp::api::Caller& c) { return g->api.handle(r, c); });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", g->path.c_str());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) finding("connect", "");
  fcntl(fd, F_SETFL, O_NONBLOCK);
  std::size_t sent = 0;
  bool shut = false;
  std::string replies;
  std::size_t requests = 1;  // an unterminated last line still may get a reply
  for (std::size_t i = 0; i < size; ++i) requests += data[i] == '\n';
  for (int spins = 0; spins < 100000; ++spins) {
    if (sent < size) {
      const ssize_t n = ::send(fd, data + sent, size - sent, MSG_NOSIGNAL);
      if (n > 0) sent += static_cast<std::size_t>(n);
    } else if (!shut) {
      ::shutdown(fd, SHUT_WR);
      shut = true;
    }
    g->io.poll();
    g->io.restart();
    char buf[65536];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) replies.append(buf, static_cast<std::size_t>(n));
    if (n == 0) break;  // the server closed: everything answered
    if (n < 0 && errno != EAGAIN) break;
    if (n < 0) ::poll(nullptr, 0, 0);
  }
  ::close(fd);
  g->io.poll();
  g->io.restart();
  std::size_t lines = 0, start = 0;
  for (std::size_t nl; (nl = replies.find('\n', start)) != std::string::npos; start = nl + 1) {
    ++lines;
    const Json r = Json::parse(replies.substr(start, nl - start), nullptr, false);
    if (r.is_discarded() || !r.is_object() || !r.contains("ok"))
      finding("reply is not a JSON object with 'ok'", replies.substr(start, nl - start));
  }
  if (start != replies.size()) finding("reply without its newline", replies.substr(start));
  if (lines > requests) finding("more replies than requests", std::to_string(lines));
  return 0;
}
