#include "metrics_server.hpp"

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <memory>
#include <stdexcept>

#include "api_server.hpp"

namespace tp {

namespace beast = boost::beast;
namespace http = beast::http;
using boost::asio::ip::tcp;

namespace {
constexpr auto kClientTimeout = std::chrono::seconds(5);
}  // namespace

struct MetricsServer::Exchange : std::enable_shared_from_this<Exchange> {
  Exchange(tcp::socket s, std::shared_ptr<MetricsServer*> srv)
      : stream(std::move(s)), server(std::move(srv)) {}
  // The connection slot is given back whichever way the exchange ends.
  ~Exchange() {
    if (*server) (*server)->finished();
  }

  void start() {
    stream.expires_after(kClientTimeout);
    http::async_read(stream, buffer, request,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       if (!ec && *self->server) self->respond();
                     });
  }

  void respond() {
    response.version(request.version());
    response.keep_alive(false);
    if (request.method() != http::verb::get) {
      response.result(http::status::method_not_allowed);
      response.body() = "GET only\n";
    } else if (request.target() != "/metrics") {
      response.result(http::status::not_found);
      response.body() = "try /metrics\n";
    } else {
      response.result(http::status::ok);
      response.set(http::field::content_type, "text/plain; version=0.0.4");
      try {
        response.body() = (*server)->render_();
      } catch (const std::exception& e) {
        response.result(http::status::internal_server_error);
        response.body() = std::string(e.what()) + "\n";
      }
    }
    response.prepare_payload();
    stream.expires_after(kClientTimeout);
    http::async_write(stream, response,
                      [self = shared_from_this()](beast::error_code, std::size_t) {
                        beast::error_code ec;
                        self->stream.socket().shutdown(tcp::socket::shutdown_send, ec);
                      });
  }

  beast::tcp_stream stream;
  std::shared_ptr<MetricsServer*> server;
  beast::flat_buffer buffer;
  http::request<http::string_body> request;
  http::response<http::string_body> response;
};

MetricsServer::MetricsServer(boost::asio::io_context& io, const conf::MetricsConfig& cfg,
                             Render render)
    : acceptor_(io),
      backoff_(io),
      render_(std::move(render)),
      max_connections_(cfg.max_connections) {
  const auto addr = boost::asio::ip::make_address(cfg.address.str());
  const tcp::endpoint ep(addr, cfg.port);
  boost::system::error_code ec;
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(16, ec);
  if (ec)
    throw std::runtime_error("metrics: cannot listen on " + cfg.address.str() + ":" +
                             std::to_string(cfg.port) + ": " + ec.message());
  accept();
}

MetricsServer::~MetricsServer() {
  *self_ = nullptr;
  boost::system::error_code ec;
  acceptor_.close(ec);
  backoff_.cancel();
}

void MetricsServer::finished() {
  --active_;
  if (!accepting_ && active_ < max_connections_) accept();
}

void MetricsServer::accept() {
  if (active_ >= max_connections_) {
    ++deferred;
    return;  // finished() resumes
  }
  accepting_ = true;
  acceptor_.async_accept(
      [this, alive = self_](const boost::system::error_code& ec, tcp::socket socket) {
        if (!*alive || ec == boost::asio::error::operation_aborted) return;
        accepting_ = false;
        if (ec) {
          ++accept_errors;
          if (accept_should_back_off(ec)) {
            accepting_ = true;  // the timer will accept
            backoff_.expires_after(kAcceptBackoff);
            backoff_.async_wait([this, alive](const boost::system::error_code& wec) {
              if (!*alive) return;
              accepting_ = false;
              if (!wec) accept();
            });
            return;
          }
        } else {
          ++active_;
          std::make_shared<Exchange>(std::move(socket), self_)->start();
        }
        accept();
      });
}

}  // namespace tp
