#include "metrics_server.hpp"

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <memory>
#include <stdexcept>

namespace tp {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using boost::asio::ip::tcp;

constexpr auto kClientTimeout = std::chrono::seconds(5);

struct Exchange : std::enable_shared_from_this<Exchange> {
  Exchange(tcp::socket s, const MetricsServer::Render& r) : stream(std::move(s)), render(r) {}

  void start() {
    stream.expires_after(kClientTimeout);
    http::async_read(stream, buffer, request,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       if (!ec) self->respond();
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
      response.body() = render();
    }
    response.prepare_payload();
    http::async_write(stream, response,
                      [self = shared_from_this()](beast::error_code, std::size_t) {
                        beast::error_code ec;
                        self->stream.socket().shutdown(tcp::socket::shutdown_send, ec);
                      });
  }

  beast::tcp_stream stream;
  const MetricsServer::Render& render;
  beast::flat_buffer buffer;
  http::request<http::string_body> request;
  http::response<http::string_body> response;
};

}  // namespace

MetricsServer::MetricsServer(boost::asio::io_context& io, const conf::MetricsConfig& cfg,
                             Render render)
    : acceptor_(io), render_(std::move(render)) {
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
  boost::system::error_code ec;
  acceptor_.close(ec);
}

void MetricsServer::accept() {
  acceptor_.async_accept([this](const boost::system::error_code& ec, tcp::socket socket) {
    if (ec == boost::asio::error::operation_aborted) return;
    if (!ec) std::make_shared<Exchange>(std::move(socket), render_)->start();
    accept();
  });
}

}  // namespace tp
