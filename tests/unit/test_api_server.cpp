// The API transport on a real Unix socket and a real Boost.Asio loop: replies per line, malformed
// JSON, oversized requests and a client vanishing mid-request affect only their own connection,
// events reach subscribers; the metrics listener answers over real TCP.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "api_server.hpp"
#include "metrics_server.hpp"

namespace tp {
namespace {

using Json = nlohmann::json;

class Client {
 public:
  explicit Client(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
    connected = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~Client() { close(); }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  void send(const std::string& s) {
    std::size_t done = 0;
    while (done < s.size()) {
      const ssize_t n = ::send(fd_, s.data() + done, s.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return;
      done += static_cast<std::size_t>(n);
    }
  }
  // One line, without its newline; "" on EOF or timeout.
  std::string line() {
    for (;;) {
      const auto nl = buf_.find('\n');
      if (nl != std::string::npos) {
        std::string l = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return l;
      }
      char tmp[4096];
      const ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
      if (n <= 0) return "";
      buf_.append(tmp, static_cast<std::size_t>(n));
    }
  }
  Json call(const std::string& req) { return Json::parse(call_raw(req), nullptr, false); }
  std::string call_raw(const std::string& req) {
    send(req + "\n");
    return line();
  }
  bool connected = false;

 private:
  int fd_ = -1;
  std::string buf_;
};

class ApiServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cfg.socket = ::testing::TempDir() + "/tp-api-test-" + std::to_string(::getpid()) + ".sock";
    configure(cfg);
    server = std::make_unique<ApiServer>(io, cfg, [this](const Json& req, const api::Caller&) {
      ++handled;
      // Throws on a non-string op, as any handler might throw: the transport must cope.
      const std::string op = req.value("op", "");
      if (op == "publish") server->publish(Json{{"event", "limit_reached"}});
      if (op == "big") return Json{{"ok", true}, {"blob", std::string(1 << 20, 'b')}};
      if (op == "latin1") return Json{{"ok", false}, {"message", std::string("caf\xe9 \xff")}};
      return Json{{"ok", true}, {"echo", req}};
    });
    loop = std::thread([this] {
      auto guard = boost::asio::make_work_guard(io);
      io.run();
    });
  }
  void TearDown() override {
    boost::asio::post(io, [this] {
      server.reset();
      io.stop();
    });
    loop.join();
  }

  virtual void configure(conf::ApiConfig&) {}
  // Reads a value the loop thread owns, on the loop thread.
  template <class Fn>
  auto on_loop(Fn fn) {
    std::promise<decltype(fn())> p;
    boost::asio::post(io, [&] { p.set_value(fn()); });
    return p.get_future().get();
  }

  boost::asio::io_context io;
  conf::ApiConfig cfg;
  std::unique_ptr<ApiServer> server;
  std::thread loop;
  std::atomic<int> handled = 0;
};

// Every request line, of any JSON shape or none, gets one valid JSON error reply, and the daemon
// keeps serving. A handler that throws costs a reply, never the loop.
TEST_F(ApiServerTest, AnyShapeGetsAnErrorReplyAndTheServerLives) {
  Client c(cfg.socket);
  ASSERT_TRUE(c.connected);
  for (const char* line :
       {R"({"op":1})", R"({"op":null})", R"({"op":[]})", R"({"op":{"x":1}})", "[]", "1", "\"op\"",
        "null", "true", R"({"op":"subscribe_events","x":)", "\xff\xfe"}) {
    const std::string reply = c.call_raw(line);
    const Json r = Json::parse(reply, nullptr, false);
    ASSERT_FALSE(r.is_discarded()) << line << " -> " << reply;
    EXPECT_EQ(r.value("ok", true), false) << line << " -> " << reply;
  }
  Client other(cfg.socket);
  EXPECT_EQ(other.call(R"({"op":"alive"})")["echo"]["op"], "alive");
  EXPECT_EQ(c.call(R"({"op":"alive"})")["echo"]["op"], "alive");
}

TEST_F(ApiServerTest, RepliesAreValidJsonWhateverBytesTheyCarry) {
  Client c(cfg.socket);
  const std::string reply = c.call_raw(R"({"op":"latin1"})");
  const Json r = Json::parse(reply, nullptr, false);
  ASSERT_FALSE(r.is_discarded()) << reply;
  EXPECT_EQ(r["message"], "caf\xef\xbf\xbd \xef\xbf\xbd");  // U+FFFD for each bad byte
}

// A client that pipelines requests with big replies and never reads holds one reply, not a queue
// of them: the next request is read only once the previous reply is written.
TEST_F(ApiServerTest, OneRequestInFlightPerClient) {
  Client greedy(cfg.socket);
  std::string burst;
  for (int i = 0; i < 64; ++i) burst += "{\"op\":\"big\"}\n";
  greedy.send(burst);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_LE(handled.load(), 2) << "requests were read ahead of their replies";
  Client other(cfg.socket);  // meanwhile, others are served
  EXPECT_EQ(other.call(R"({"op":"x"})")["echo"]["op"], "x");
  for (int i = 0; i < 64; ++i)
    ASSERT_EQ(Json::parse(greedy.line())["blob"].get<std::string>().size(), 1u << 20);
}

class ApiServerLimitsTest : public ApiServerTest {
  void configure(conf::ApiConfig& c) override {
    c.idle_timeout_s = 1;
    c.max_clients = 3;
    c.max_subscribers = 1;
  }
};

// Silent clients do not hold the API: after the idle timeout they are closed, so the connection
// manager gets in again. Subscribers are silent by nature and stay.
TEST_F(ApiServerLimitsTest, IdleClientsAreClosedSubscribersStay) {
  Client sub(cfg.socket);
  ASSERT_EQ(sub.call(R"({"op":"subscribe_events"})")["subscribed"], true);
  Client a(cfg.socket), b(cfg.socket);
  EXPECT_EQ(a.call(R"({"op":"x"})")["ok"], true);
  Client refused(cfg.socket);
  EXPECT_EQ(Json::parse(refused.line())["error"], "busy");
  std::this_thread::sleep_for(std::chrono::milliseconds(1600));
  EXPECT_EQ(a.line(), "");  // closed
  EXPECT_EQ(b.line(), "");
  Client later(cfg.socket);
  EXPECT_EQ(later.call(R"({"op":"x"})")["ok"], true);
  EXPECT_EQ(on_loop([&] { return server->counters().idle_closed; }), 2u);
  EXPECT_EQ(later.call(R"({"op":"publish"})")["ok"], true);
  EXPECT_EQ(Json::parse(sub.line())["event"], "limit_reached");  // the subscriber is still there
}

TEST_F(ApiServerLimitsTest, SubscribersAreCapped) {
  Client one(cfg.socket), two(cfg.socket);
  EXPECT_EQ(one.call(R"({"op":"subscribe_events"})")["subscribed"], true);
  EXPECT_EQ(two.call(R"({"op":"subscribe_events"})")["error"], "busy");
  EXPECT_EQ(two.call(R"({"op":"x"})")["ok"], true);  // still an ordinary client
}

// Roles split: anyone in api.group may read, only api.control_group may control. Read-only
// callers must not be able to lock the control callers out of the API or of its events.
class ApiServerRolesTest : public ApiServerTest {
  void configure(conf::ApiConfig& c) override {
    c.max_clients = 8;
    c.max_subscribers = 4;
    c.group = "users";
    c.control_group = "staff";
  }
};

// A connection made by uid 4242 in group users only: a read-only caller. The credentials change
// on one thread alone (raw syscalls; glibc's wrappers would change every thread's), and the
// socket keeps the connecting thread's.
std::unique_ptr<Client> reader(const std::string& path) {
  std::unique_ptr<Client> c;
  std::thread([&] {
    const gid_t users = 100;
    if (syscall(SYS_setgroups, 1, &users) == 0 && syscall(SYS_setresgid, 100, 100, 100) == 0 &&
        syscall(SYS_setresuid, 4242, 4242, 4242) == 0)
      c = std::make_unique<Client>(path);
  }).join();
  return c;
}

// Readers connected while they may (ASSERTs: all of them got in).
std::vector<std::unique_ptr<Client>> readers(const std::string& path, int n) {
  std::vector<std::unique_ptr<Client>> out;
  for (int i = 0; i < n; ++i) {
    out.push_back(reader(path));
    EXPECT_TRUE(out.back() && out.back()->connected);
  }
  return out;
}

TEST_F(ApiServerRolesTest, ReadOnlyCallersLeaveConnectionsForControl) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to connect as another user";
  auto six = readers(cfg.socket, 6);
  for (auto& r : six) ASSERT_EQ(r->call(R"({"op":"x"})")["ok"], true);
  // Six of eight connections read-only: the last two are kept for control callers.
  auto seventh = reader(cfg.socket);
  ASSERT_TRUE(seventh);
  EXPECT_EQ(Json::parse(seventh->line(), nullptr, false)["error"], "busy");
  Client control(cfg.socket);  // root
  EXPECT_EQ(control.call(R"({"op":"x"})")["ok"], true);
}

TEST_F(ApiServerRolesTest, ReadOnlySubscribersLeaveAnEventStreamForControl) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to connect as another user";
  auto four = readers(cfg.socket, 4);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(four[i]->call(R"({"op":"subscribe_events"})")["subscribed"], true);
  EXPECT_EQ(four[3]->call(R"({"op":"subscribe_events"})")["error"], "busy");
  EXPECT_EQ(four[3]->call(R"({"op":"x"})")["ok"], true);  // still a reader
  Client control(cfg.socket);
  EXPECT_EQ(control.call(R"({"op":"subscribe_events"})")["subscribed"], true);
  EXPECT_EQ(four[3]->call(R"({"op":"publish"})")["ok"], true);
  EXPECT_EQ(Json::parse(control.line())["event"], "limit_reached");
}

TEST_F(ApiServerTest, OneReplyPerLine) {
  Client c(cfg.socket);
  ASSERT_TRUE(c.connected);
  c.send("{\"op\":\"a\"}\n{\"op\":\"b\"}\n");
  EXPECT_EQ(Json::parse(c.line())["echo"]["op"], "a");
  EXPECT_EQ(Json::parse(c.line())["echo"]["op"], "b");
}

TEST_F(ApiServerTest, BadClientsDoNotDisturbOthers) {
  Client good(cfg.socket);
  ASSERT_TRUE(good.connected);
  {
    Client bad(cfg.socket);
    const Json r = bad.call("{not json");
    EXPECT_EQ(r["error"], "malformed_json");
    EXPECT_EQ(bad.call(R"({"op":"still here"})")["ok"], true);  // the connection stays usable
  }
  {
    Client huge(cfg.socket);
    huge.send(std::string(ApiServer::kMaxRequestBytes + 10, 'x'));
    const Json r = Json::parse(huge.line(), nullptr, false);
    EXPECT_EQ(r["error"], "request_too_large");
    EXPECT_EQ(huge.line(), "");  // and then closed
  }
  {
    Client vanishing(cfg.socket);
    vanishing.send(R"({"op":"half a requ)");
    vanishing.close();
  }
  EXPECT_EQ(good.call(R"({"op":"x"})")["echo"]["op"], "x");
}

TEST_F(ApiServerTest, SubscribersGetEvents) {
  Client sub(cfg.socket), other(cfg.socket);
  EXPECT_EQ(sub.call(R"({"op":"subscribe_events"})")["subscribed"], true);
  EXPECT_EQ(other.call(R"({"op":"publish"})")["ok"], true);
  EXPECT_EQ(Json::parse(sub.line())["event"], "limit_reached");
}

TEST_F(ApiServerTest, SocketModeIsApplied) {
  struct stat st {};
  ASSERT_EQ(::stat(cfg.socket.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
}

TEST(MetricsServer, ServesMetricsOverHttp) {
  boost::asio::io_context io;
  conf::MetricsConfig cfg;
  cfg.port = 0;  // any free port
  MetricsServer m(io, cfg, [] { return std::string("tetherpath_flows 3\n"); });
  std::string reply;
  std::atomic<bool> done{false};
  boost::asio::io_context cio;
  boost::asio::ip::tcp::socket s(cio);
  std::thread client([&, port = m.port()] {
    s.connect({boost::asio::ip::make_address("127.0.0.1"), port});
    const std::string req = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    boost::asio::write(s, boost::asio::buffer(req));
    boost::system::error_code ec;
    boost::asio::read(s, boost::asio::dynamic_buffer(reply), ec);
    done = true;
  });
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!done && std::chrono::steady_clock::now() < until)
    io.run_for(std::chrono::milliseconds(50));
  // A server that never answers fails the test instead of hanging it (and CI with it).
  ::shutdown(s.native_handle(), SHUT_RDWR);
  client.join();
  EXPECT_NE(reply.find("200 OK"), std::string::npos) << reply;
  EXPECT_NE(reply.find("tetherpath_flows 3"), std::string::npos) << reply;
}

// At most max_connections scrapes are served at once; the rest wait in the listen backlog and are
// served as slots free up.
TEST(MetricsServer, ConnectionsAreCapped) {
  boost::asio::io_context io;
  conf::MetricsConfig cfg;
  cfg.port = 0;
  cfg.max_connections = 2;
  MetricsServer m(io, cfg, [] { return std::string("tetherpath_flows 3\n"); });
  const auto ep =
      boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), m.port());
  boost::asio::io_context cio;
  std::vector<boost::asio::ip::tcp::socket> idle;
  for (int i = 0; i < 4; ++i) {
    idle.emplace_back(cio);
    idle.back().connect(ep);  // the kernel completes it; the server may not have accepted it
  }
  io.run_for(std::chrono::milliseconds(200));
  EXPECT_EQ(m.active(), 2u);
  EXPECT_GE(m.deferred, 1u);
  idle.clear();  // closing them frees the slots: the backlog is served
  std::string reply;
  std::thread client([&] {
    boost::asio::ip::tcp::socket s(cio);
    s.connect(ep);
    boost::asio::write(
        s, boost::asio::buffer(std::string("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")));
    boost::system::error_code ec;
    boost::asio::read(s, boost::asio::dynamic_buffer(reply), ec);
  });
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (reply.empty() && std::chrono::steady_clock::now() < until)
    io.run_for(std::chrono::milliseconds(50));
  client.join();
  EXPECT_NE(reply.find("tetherpath_flows 3"), std::string::npos) << reply;
}

// Out of descriptors (EMFILE), the accept loops wait instead of spinning the control thread, and
// serve again once descriptors are free. In a child process: the descriptor limit is per process.
TEST(MetricsServer, AcceptBacksOffWhenOutOfDescriptors) {
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int rc = 0;
    {
      boost::asio::io_context io;
      conf::MetricsConfig cfg;
      cfg.port = 0;
      cfg.max_connections = 64;
      MetricsServer m(io, cfg, [] { return std::string("x 1\n"); });
      const auto ep =
          boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), m.port());
      // Use up every descriptor but a few, then connect: the server's accept gets EMFILE.
      std::vector<int> hog;
      rlimit lim{64, 64};
      setrlimit(RLIMIT_NOFILE, &lim);
      for (int fd; (fd = ::dup(0)) >= 0;) hog.push_back(fd);
      ::close(hog.back());
      hog.pop_back();
      const int c = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in sa{};
      sa.sin_family = AF_INET;
      sa.sin_port = htons(m.port());
      sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      ::connect(c, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
      rusage before{}, after{};
      getrusage(RUSAGE_SELF, &before);
      io.run_for(std::chrono::milliseconds(1000));
      getrusage(RUSAGE_SELF, &after);
      const double cpu = (after.ru_utime.tv_sec - before.ru_utime.tv_sec) +
                         (after.ru_stime.tv_sec - before.ru_stime.tv_sec) +
                         (after.ru_utime.tv_usec - before.ru_utime.tv_usec) / 1e6 +
                         (after.ru_stime.tv_usec - before.ru_stime.tv_usec) / 1e6;
      if (m.accept_errors == 0) rc |= 1;  // it did run out
      if (m.accept_errors > 20) rc |= 2;  // and did not retry in a loop
      if (cpu > 0.3) rc |= 4;             // nor burn the CPU
      for (int fd : hog) ::close(fd);
      io.run_for(std::chrono::milliseconds(500));
      if (m.active() != 1) rc |= 8;  // the waiting connection was accepted once possible
      (void)ep;
      ::close(c);
    }
    _exit(rc);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: no EMFILE, 2: accept retried in a loop, 4: CPU burnt, "
                                       "8: not served after descriptors came back";
}

}  // namespace
}  // namespace tp
