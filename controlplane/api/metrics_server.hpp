// Prometheus metrics over HTTP (Boost.Beast) on a loopback listener: GET /metrics returns the
// text exposition format the render callback produces. One request per connection, served on the
// control loop; a slow or broken client only costs its own connection, and at most
// max_connections are served at once (the rest wait in the listen backlog), so a scraper storm
// cannot take the control thread's descriptors or time.
#pragma once

#include <functional>
#include <string>

#include "asio.hpp"
#include "config.hpp"

namespace tp {

class MetricsServer {
 public:
  using Render = std::function<std::string()>;
  // Throws std::runtime_error when the listener cannot be bound.
  MetricsServer(boost::asio::io_context& io, const conf::MetricsConfig& cfg, Render render);
  ~MetricsServer();
  uint16_t port() const { return acceptor_.local_endpoint().port(); }
  std::size_t active() const { return active_; }
  uint64_t accept_errors = 0, deferred = 0;

 private:
  struct Exchange;
  void accept();
  void finished();
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer backoff_;
  Render render_;
  std::size_t max_connections_;
  std::size_t active_ = 0;
  bool accepting_ = false;
  // Outlives the server for exchanges still in flight when it is destroyed.
  std::shared_ptr<MetricsServer*> self_ = std::make_shared<MetricsServer*>(this);
};

}  // namespace tp
