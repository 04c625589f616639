// A minimal HTTP/1.1 endpoint for health and metrics on the server's io_context: GET only, one
// request per connection (Connection: close), request head at most 8 KiB, 5 s to send it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <asio.hpp>

#include "libsplit/status.h"

namespace libsplit::server {

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};
using HttpHandler = std::function<HttpResponse(const std::string& path)>;

class HttpEndpoint {
 public:
  // Binds `listen` (HOST:PORT, port 0 = any free one); start() begins accepting.
  static Result<std::unique_ptr<HttpEndpoint>> create(asio::io_context& io, const std::string& listen,
                                                      HttpHandler handler);
  void start();
  void stop();  // from any thread: closes the acceptor (connections finish on their own)
  uint16_t port() const { return port_; }

 private:
  HttpEndpoint(asio::io_context& io, HttpHandler handler) : io_(io), acceptor_(io), handler_(std::move(handler)) {}
  void accept();
  asio::io_context& io_;
  asio::ip::tcp::acceptor acceptor_;
  HttpHandler handler_;
  uint16_t port_ = 0;
};

}  // namespace libsplit::server
