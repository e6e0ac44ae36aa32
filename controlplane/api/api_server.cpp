#include "api_server.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <deque>
#include <iostream>
#include <stdexcept>
#include <vector>

#include "daemon_log.hpp"

namespace tp {

using boost::asio::local::stream_protocol;

std::string json_line(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + '\n';
}

bool accept_should_back_off(const boost::system::error_code& ec) {
  const int e = ec.value();
  return ec.category() == boost::system::system_category() &&
         (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM);
}

namespace {

nlohmann::json error_reply(const char* code, const std::string& message) {
  return {{"ok", false}, {"error", code}, {"message", message}};
}

// The one place an API operation's name is read: anything but a string is no operation.
std::string op_of(const nlohmann::json& req) {
  if (!req.is_object()) return "";
  const auto it = req.find("op");
  return it != req.end() && it->is_string() ? it->get<std::string>() : "";
}

}  // namespace

// One client. Requests are served one at a time: the next line is read only once the previous
// reply has been written, so a client that pipelines requests and never reads holds one reply in
// memory, not an unbounded queue. A client that neither sends nor reads for the idle timeout is
// disconnected (subscribers excepted: silence is what they do).
class ApiServer::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(ApiServer& server, stream_protocol::socket socket, const api::Caller& caller)
      : caller_(caller),
        server_(server),
        socket_(std::move(socket)),
        in_(kMaxRequestBytes),
        idle_(socket_.get_executor()) {}

  void start() { read(); }
  void close() {
    boost::system::error_code ec;
    idle_.cancel();
    socket_.close(ec);
  }

  void push_event(const std::string& line) {
    if (queued_bytes_ + line.size() > kMaxQueuedBytes) {
      ++server_.counters_.slow_subscribers;
      end();
      return;
    }
    enqueue(line);
  }

  bool subscribed = false;
  bool control() const { return caller_.control; }

 private:
  // Every completion handler goes through here: nothing a client does may let an exception reach
  // io_context::run(), which would take the daemon (and all tethering) down.
  template <class Fn>
  void guarded(Fn&& fn) {
    try {
      fn();
    } catch (const std::exception& e) {
      ++server_.counters_.handler_errors;
      log::err() << "api: dropping a client after an internal error: " << e.what();
      end();
    }
  }

  void touch() {
    if (subscribed || server_.cfg_.idle_timeout_s == 0) {
      idle_.cancel();
      return;
    }
    idle_.expires_after(std::chrono::seconds(server_.cfg_.idle_timeout_s));
    idle_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (ec || self->ended_) return;
      ++self->server_.counters_.idle_closed;
      self->end();
    });
  }

  void read() {
    touch();
    boost::asio::async_read_until(
        socket_, in_, '\n',
        [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
          self->guarded([&] { self->on_line(ec, n); });
        });
  }

  void on_line(const boost::system::error_code& ec, std::size_t n) {
    if (ended_) return;
    if (ec == boost::asio::error::not_found) {  // no newline within kMaxRequestBytes
      ++server_.counters_.oversized;
      closing_ = true;  // the rest of that request cannot be told from the next one
      reply(error_reply("request_too_large",
                        "a request is at most " + std::to_string(kMaxRequestBytes) + " bytes"));
      return;
    }
    if (ec) {
      end();
      return;
    }
    touch();  // the client spoke: its idle time starts again
    std::string line(boost::asio::buffers_begin(in_.data()),
                     boost::asio::buffers_begin(in_.data()) + static_cast<long>(n) - 1);
    in_.consume(n);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) {
      read();
      return;
    }
    reply(answer(line));
  }

  Json answer(const std::string& line) {
    const Json req = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (req.is_discarded()) {
      ++server_.counters_.malformed;
      return error_reply("malformed_json", "not a JSON object");
    }
    if (op_of(req) == "subscribe_events") {
      if (!subscribed && server_.subscribers() >= server_.cfg_.max_subscribers) {
        ++server_.counters_.busy;
        return error_reply("busy", "too many event subscribers (api.max_subscribers)");
      }
      if (!subscribed && !caller_.control &&
          server_.read_only_full(server_.cfg_.max_subscribers, true)) {
        ++server_.counters_.busy;
        return error_reply("busy",
                           "the remaining event streams are kept for control callers "
                           "(api.control_group)");
      }
      subscribed = true;
      return Json{{"ok", true}, {"subscribed", true}};
    }
    try {
      return server_.handler_(req, caller_);
    } catch (const std::exception& e) {
      ++server_.counters_.handler_errors;
      return error_reply("internal", e.what());
    }
  }

  // The request's reply; the next request is read once it has been written.
  void reply(const Json& r) {
    awaiting_reply_ = true;
    enqueue(json_line(r));
  }

  void enqueue(std::string line) {
    queued_bytes_ += line.size();
    queue_.push_back(std::move(line));
    if (queue_.size() == 1) write();
  }

  void write() {
    boost::asio::async_write(
        socket_, boost::asio::buffer(queue_.front()),
        [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
          self->guarded([&] { self->on_written(ec); });
        });
  }

  void on_written(const boost::system::error_code& ec) {
    if (ended_) return;
    if (ec) {
      end();
      return;
    }
    queued_bytes_ -= queue_.front().size();
    queue_.pop_front();
    touch();  // and it read what we wrote
    if (!queue_.empty()) {
      write();
      return;
    }
    if (closing_) {
      end();
      return;
    }
    if (awaiting_reply_) {
      awaiting_reply_ = false;
      read();
    }
  }

  void end() {
    if (ended_) return;
    ended_ = true;
    close();
    server_.sessions_.erase(shared_from_this());
  }

  const api::Caller caller_;  // fixed for the connection: SO_PEERCRED is the connect()er's
  ApiServer& server_;
  stream_protocol::socket socket_;
  boost::asio::streambuf in_;
  boost::asio::steady_timer idle_;
  std::deque<std::string> queue_;
  std::size_t queued_bytes_ = 0;
  bool awaiting_reply_ = false;
  bool closing_ = false;
  bool ended_ = false;
};

ApiServer::ApiServer(boost::asio::io_context& io, const conf::ApiConfig& cfg, Handler handler)
    : acceptor_(io), accept_backoff_(io), cfg_(cfg), handler_(std::move(handler)) {
  for (auto [name, gid] : {std::pair{&cfg_.group, &gid_},
                           {&cfg_.control_group, &control_gid_},
                           {&cfg_.emergency_group, &emergency_gid_}}) {
    if (name->empty()) continue;
    const group* g = getgrnam(name->c_str());
    if (!g) throw std::runtime_error("api: group '" + *name + "' does not exist");
    *gid = g->gr_gid;
  }
  // A socket file left by a crashed instance (the instance lock says none is running).
  ::unlink(cfg_.socket.c_str());
  boost::system::error_code ec;
  acceptor_.open(stream_protocol(), ec);
  if (!ec) acceptor_.bind(stream_protocol::endpoint(cfg_.socket), ec);
  if (!ec) acceptor_.listen(boost::asio::socket_base::max_listen_connections, ec);
  if (ec) throw std::runtime_error("api: cannot listen on " + cfg_.socket + ": " + ec.message());
  if (gid_ && ::chown(cfg_.socket.c_str(), 0, *gid_) != 0)
    throw std::runtime_error("api: cannot give " + cfg_.socket + " to group " + cfg_.group);
  ::chmod(cfg_.socket.c_str(), cfg_.mode);
  accept();
}

ApiServer::~ApiServer() {
  boost::system::error_code ec;
  acceptor_.close(ec);
  accept_backoff_.cancel();
  for (const auto& s : sessions_) s->close();
  sessions_.clear();
  ::unlink(cfg_.socket.c_str());
}

void ApiServer::publish(const Json& event) {
  const std::string line = json_line(event);
  // Copy: a subscriber that overflows removes itself from sessions_.
  std::vector<std::shared_ptr<Session>> subscribers;
  for (const auto& s : sessions_)
    if (s->subscribed) subscribers.push_back(s);
  for (const auto& s : subscribers) s->push_event(line);
}

std::size_t ApiServer::subscribers() const {
  std::size_t n = 0;
  for (const auto& s : sessions_) n += s->subscribed;
  return n;
}

bool ApiServer::read_only_full(std::size_t slots, bool subscriptions) const {
  if (!control_gid_ || slots < 2) return false;
  const std::size_t kept = std::max<std::size_t>(1, slots / 4);
  std::size_t n = 0;
  for (const auto& s : sessions_) n += !s->control() && (!subscriptions || s->subscribed);
  return n >= slots - kept;
}

namespace {

// The caller's supplementary groups as they were when it connected (SO_PEERGROUPS, Linux 4.13),
// else as the group database lists them for its user.
std::vector<gid_t> peer_groups(int fd, uid_t uid) {
  std::vector<gid_t> groups(64);
  for (int attempt = 0; attempt < 2; ++attempt) {
    socklen_t len = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) == 0) {
      groups.resize(len / sizeof(gid_t));
      return groups;
    }
    if (errno != ERANGE) break;
    groups.resize(len / sizeof(gid_t));  // the kernel said how many
  }
  const passwd* pw = getpwuid(uid);
  if (!pw) return {};
  int n = 64;
  groups.assign(static_cast<std::size_t>(n), 0);
  if (getgrouplist(pw->pw_name, pw->pw_gid, groups.data(), &n) < 0) return {};
  groups.resize(static_cast<std::size_t>(n));
  return groups;
}

}  // namespace

// The socket's mode already keeps others out; this is the check that does not depend on the
// filesystem: root, our own user, or a member of the configured group. Root and our own user
// may do anything; the others what the control and emergency groups say.
std::optional<api::Caller> ApiServer::caller_of(int fd) const {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return std::nullopt;
  api::Caller c{cred.uid, cred.gid, cred.pid, true, true};
  if (cred.uid == 0 || cred.uid == ::geteuid()) return c;
  const std::vector<gid_t> groups = peer_groups(fd, cred.uid);
  const auto member = [&](std::optional<unsigned> gid) {
    return gid &&
           (cred.gid == *gid || std::find(groups.begin(), groups.end(), *gid) != groups.end());
  };
  if (!member(gid_)) return std::nullopt;
  c.control = !control_gid_ || member(control_gid_);
  c.emergency = c.control && member(emergency_gid_);
  return c;
}

void ApiServer::accept() {
  acceptor_.async_accept(
      [this](const boost::system::error_code& ec, stream_protocol::socket socket) {
        if (ec == boost::asio::error::operation_aborted) return;
        if (ec) {
          ++counters_.accept_errors;
          if (accept_should_back_off(ec)) {
            accept_backoff_.expires_after(kAcceptBackoff);
            accept_backoff_.async_wait([this](const boost::system::error_code& wec) {
              if (!wec) accept();
            });
            return;
          }
          accept();
          return;
        }
        // A refusal is written without waiting: the reply is one short line into an empty socket
        // buffer, and a non-blocking write that does not fit is simply not sent.
        auto refuse = [&socket](const char* code, const char* message) {
          boost::system::error_code wec;
          socket.non_blocking(true, wec);
          socket.write_some(boost::asio::buffer(json_line(error_reply(code, message))), wec);
        };
        const auto caller = caller_of(socket.native_handle());
        if (!caller) {
          ++counters_.rejected_peers;
          refuse("permission_denied", "not allowed");
        } else if (sessions_.size() >= cfg_.max_clients) {
          ++counters_.busy;
          refuse("busy", "too many API clients");
        } else if (!caller->control && read_only_full(cfg_.max_clients, false)) {
          ++counters_.busy;
          refuse("busy", "the remaining API connections are kept for control callers");
        } else {
          auto s = std::make_shared<Session>(*this, std::move(socket), *caller);
          sessions_.insert(s);
          s->start();
        }
        accept();
      });
}

}  // namespace tp
