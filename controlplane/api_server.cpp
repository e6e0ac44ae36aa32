#include "api_server.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <deque>
#include <stdexcept>
#include <vector>

namespace tp {

using boost::asio::local::stream_protocol;

class ApiServer::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(ApiServer& server, stream_protocol::socket socket)
      : server_(server), socket_(std::move(socket)), in_(kMaxRequestBytes) {}

  void start() { read(); }
  void close() {
    boost::system::error_code ec;
    socket_.close(ec);
  }

  void send(std::string line) {
    if (queue_.size() >= kMaxQueuedEvents) {  // a subscriber that stopped reading
      end();
      return;
    }
    line += '\n';
    queue_.push_back(std::move(line));
    if (queue_.size() == 1) write();
  }

  bool subscribed = false;

 private:
  void read() {
    boost::asio::async_read_until(
        socket_, in_, '\n',
        [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
          self->on_line(ec, n);
        });
  }

  void on_line(const boost::system::error_code& ec, std::size_t n) {
    if (ec == boost::asio::error::not_found) {  // no newline within kMaxRequestBytes
      ++server_.oversized;
      send(Json{{"ok", false},
                {"error", "request_too_large"},
                {"message", "a request is at most " + std::to_string(kMaxRequestBytes) + " bytes"}}
               .dump());
      closing_ = true;  // the rest of that request cannot be told from the next one
      return;
    }
    if (ec) {
      end();
      return;
    }
    std::string line(boost::asio::buffers_begin(in_.data()),
                     boost::asio::buffers_begin(in_.data()) + static_cast<long>(n) - 1);
    in_.consume(n);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) {
      Json req = Json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (req.is_discarded()) {
        ++server_.malformed;
        send(Json{{"ok", false}, {"error", "malformed_json"}, {"message", "not a JSON object"}}
                 .dump());
      } else if (req.is_object() && req.value("op", "") == "subscribe_events") {
        subscribed = true;
        send(Json{{"ok", true}, {"subscribed", true}}.dump());
      } else {
        send(server_.handler_(req).dump());
      }
    }
    read();
  }

  void write() {
    boost::asio::async_write(
        socket_, boost::asio::buffer(queue_.front()),
        [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
          if (ec) {
            self->end();
            return;
          }
          self->queue_.pop_front();
          if (!self->queue_.empty())
            self->write();
          else if (self->closing_)
            self->end();
        });
  }

  void end() {
    close();
    server_.sessions_.erase(shared_from_this());
  }

  ApiServer& server_;
  stream_protocol::socket socket_;
  boost::asio::streambuf in_;
  std::deque<std::string> queue_;
  bool closing_ = false;
};

ApiServer::ApiServer(boost::asio::io_context& io, const conf::ApiConfig& cfg, Handler handler)
    : acceptor_(io), cfg_(cfg), handler_(std::move(handler)) {
  if (!cfg_.group.empty()) {
    const group* g = getgrnam(cfg_.group.c_str());
    if (!g) throw std::runtime_error("api: group '" + cfg_.group + "' does not exist");
    gid_ = g->gr_gid;
  }
  // A socket file left by a crashed instance (the instance lock says none is running).
  ::unlink(cfg_.socket.c_str());
  boost::system::error_code ec;
  acceptor_.open(stream_protocol(), ec);
  if (!ec) acceptor_.bind(stream_protocol::endpoint(cfg_.socket), ec);
  if (!ec) acceptor_.listen(boost::asio::socket_base::max_listen_connections, ec);
  if (ec) throw std::runtime_error("api: cannot listen on " + cfg_.socket + ": " + ec.message());
  if (!cfg_.group.empty() && ::chown(cfg_.socket.c_str(), 0, gid_) != 0)
    throw std::runtime_error("api: cannot give " + cfg_.socket + " to group " + cfg_.group);
  ::chmod(cfg_.socket.c_str(), cfg_.mode);
  accept();
}

ApiServer::~ApiServer() {
  boost::system::error_code ec;
  acceptor_.close(ec);
  for (const auto& s : sessions_) s->close();
  sessions_.clear();
  ::unlink(cfg_.socket.c_str());
}

void ApiServer::publish(const Json& event) {
  const std::string line = event.dump();
  // Copy: a subscriber that overflows removes itself from sessions_.
  std::vector<std::shared_ptr<Session>> subscribers;
  for (const auto& s : sessions_)
    if (s->subscribed) subscribers.push_back(s);
  for (const auto& s : subscribers) s->send(line);
}

// The socket's mode already keeps others out; this is the check that does not depend on the
// filesystem: root, our own user, or a member of the configured group.
bool ApiServer::peer_allowed(int fd) const {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return false;
  if (cred.uid == 0 || cred.uid == ::geteuid()) return true;
  if (cfg_.group.empty()) return false;
  if (cred.gid == gid_) return true;
  const passwd* pw = getpwuid(cred.uid);
  if (!pw) return false;
  int n = 64;
  std::vector<gid_t> groups(static_cast<std::size_t>(n));
  if (getgrouplist(pw->pw_name, pw->pw_gid, groups.data(), &n) < 0) return false;
  for (int i = 0; i < n; ++i)
    if (groups[static_cast<std::size_t>(i)] == gid_) return true;
  return false;
}

void ApiServer::accept() {
  acceptor_.async_accept([this](const boost::system::error_code& ec,
                                stream_protocol::socket socket) {
    if (ec == boost::asio::error::operation_aborted) return;
    if (!ec) {
      if (!peer_allowed(socket.native_handle())) {
        ++rejected_peers;
        const std::string no =
            Json{{"ok", false}, {"error", "permission_denied"}, {"message", "not allowed"}}.dump() +
            "\n";
        boost::system::error_code wec;
        boost::asio::write(socket, boost::asio::buffer(no), wec);
      } else if (sessions_.size() >= cfg_.max_clients) {
        const std::string busy =
            Json{{"ok", false}, {"error", "busy"}, {"message", "too many API clients"}}.dump() +
            "\n";
        boost::system::error_code wec;
        boost::asio::write(socket, boost::asio::buffer(busy), wec);
      } else {
        auto s = std::make_shared<Session>(*this, std::move(socket));
        sessions_.insert(s);
        s->start();
      }
    }
    accept();
  });
}

}  // namespace tp
