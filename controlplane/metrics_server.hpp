// Prometheus metrics over HTTP (Boost.Beast) on a loopback listener: GET /metrics returns the
// text exposition format the render callback produces. One request per connection, served on the
// control loop; a slow or broken client only costs its own connection.
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

 private:
  void accept();
  boost::asio::ip::tcp::acceptor acceptor_;
  Render render_;
};

}  // namespace tp
