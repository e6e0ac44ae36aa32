// The API transport on a real Unix socket and a real Boost.Asio loop: replies per line, malformed
// JSON, oversized requests and a client vanishing mid-request affect only their own connection,
// events reach subscribers; the metrics listener answers over real TCP.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

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
  Json call(const std::string& req) {
    send(req + "\n");
    return Json::parse(line(), nullptr, false);
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
    server = std::make_unique<ApiServer>(io, cfg, [this](const Json& req) {
      ++handled;
      if (req.value("op", "") == "publish") server->publish(Json{{"event", "limit_reached"}});
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

  boost::asio::io_context io;
  conf::ApiConfig cfg;
  std::unique_ptr<ApiServer> server;
  std::thread loop;
  int handled = 0;
};

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
  std::thread client([&, port = m.port()] {
    boost::asio::io_context cio;
    boost::asio::ip::tcp::socket s(cio);
    s.connect({boost::asio::ip::make_address("127.0.0.1"), port});
    const std::string req = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    boost::asio::write(s, boost::asio::buffer(req));
    boost::system::error_code ec;
    boost::asio::read(s, boost::asio::dynamic_buffer(reply), ec);
  });
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (reply.empty() && std::chrono::steady_clock::now() < until)
    io.run_for(std::chrono::milliseconds(50));
  client.join();
  EXPECT_NE(reply.find("200 OK"), std::string::npos) << reply;
  EXPECT_NE(reply.find("tetherpath_flows 3"), std::string::npos) << reply;
}

}  // namespace
}  // namespace tp
