// The management API's transport: a Unix stream socket (mode and group from the configuration,
// callers checked with SO_PEERCRED), one JSON object per line each way. A request gets exactly one
// reply line; `subscribe_events` turns the connection into an event stream. Whatever a client
// sends (any JSON shape, bytes that are not JSON, a flood of pipelined requests, nothing at all)
// costs at most its own connection: the daemon, and every other client, keep being served.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>

#include "api_args.hpp"
#include "asio.hpp"
#include "config.hpp"

namespace tp {

class ApiServer {
 public:
  using Json = nlohmann::json;
  using Handler = std::function<Json(const Json& request, const api::Caller& caller)>;
  static constexpr std::size_t kMaxRequestBytes = 64 * 1024;
  // What may wait unwritten for one client: its reply (one request is served at a time) and the
  // events behind it. A subscriber that falls this far behind is disconnected.
  static constexpr std::size_t kMaxQueuedBytes = 8 << 20;

  // Throws std::runtime_error when the socket cannot be bound or a group does not exist.
  ApiServer(boost::asio::io_context& io, const conf::ApiConfig& cfg, Handler handler);
  ~ApiServer();

  void publish(const Json& event);
  std::size_t clients() const { return sessions_.size(); }

  struct Counters {
    uint64_t rejected_peers = 0, malformed = 0, oversized = 0, busy = 0, idle_closed = 0,
             slow_subscribers = 0, handler_errors = 0, accept_errors = 0;
  };
  const Counters& counters() const { return counters_; }

 private:
  class Session;
  void accept();
  // The caller on this connection and its roles; nothing when it may not connect at all.
  std::optional<api::Caller> caller_of(int fd) const;
  std::size_t subscribers() const;
  // With roles split (api.control_group), read-only callers (anyone in api.group) may not take
  // the last quarter (at least one) of the connections or of the event streams: the connection
  // manager must still get in, and wait for policy_applied, when they are all taken.
  bool read_only_full(std::size_t slots, bool subscriptions) const;

  boost::asio::local::stream_protocol::acceptor acceptor_;
  boost::asio::steady_timer accept_backoff_;
  conf::ApiConfig cfg_;
  Handler handler_;
  // The configured groups' ids, when set.
  std::optional<unsigned> gid_, control_gid_, emergency_gid_;
  std::set<std::shared_ptr<Session>> sessions_;
  Counters counters_;
};

// JSON text that is always valid UTF-8: bytes that are not (a config byte echoed in an error, an
// interface name) become U+FFFD instead of an exception.
std::string json_line(const nlohmann::json& j);

// Accept loops back off when the process is out of descriptors (EMFILE, ENFILE, ENOBUFS, ENOMEM):
// retrying at once would spin the control thread while the condition lasts.
bool accept_should_back_off(const boost::system::error_code& ec);
constexpr auto kAcceptBackoff = std::chrono::milliseconds(200);

}  // namespace tp
