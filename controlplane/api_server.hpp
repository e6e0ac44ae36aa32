// The management API's transport: a Unix stream socket (mode and group from the configuration,
// callers checked with SO_PEERCRED), one JSON object per line each way. A request gets exactly one
// reply line; `subscribe_events` turns the connection into an event stream. Malformed JSON, an
// oversized request or a client that vanishes mid-request affects only that connection.
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "asio.hpp"
#include "config.hpp"

namespace tp {

class ApiServer {
 public:
  using Json = nlohmann::json;
  using Handler = std::function<Json(const Json& request)>;
  static constexpr std::size_t kMaxRequestBytes = 64 * 1024;
  // Events queued for a subscriber that does not read; beyond this it is disconnected.
  static constexpr std::size_t kMaxQueuedEvents = 4096;

  // Throws std::runtime_error when the socket cannot be bound or the group does not exist.
  ApiServer(boost::asio::io_context& io, const conf::ApiConfig& cfg, Handler handler);
  ~ApiServer();

  void publish(const Json& event);
  std::size_t clients() const { return sessions_.size(); }
  uint64_t rejected_peers = 0, malformed = 0, oversized = 0;

 private:
  class Session;
  void accept();
  bool peer_allowed(int fd) const;

  boost::asio::local::stream_protocol::acceptor acceptor_;
  conf::ApiConfig cfg_;
  Handler handler_;
  unsigned gid_ = 0;  // the configured group's, when one is set
  std::set<std::shared_ptr<Session>> sessions_;
};

}  // namespace tp
