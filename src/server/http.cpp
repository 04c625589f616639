#include "server/http.h"

#include "common/errors.h"
#include "common/log.h"
#include "net/endpoint.h"

namespace libsplit::server {

using asio::ip::tcp;

namespace {

constexpr size_t kMaxHead = 8192;
constexpr auto kReadTimeout = std::chrono::seconds(5);

const char* reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return "Error";
  }
}

class HttpConnection : public std::enable_shared_from_this<HttpConnection> {
 public:
  HttpConnection(tcp::socket s, const HttpHandler& h)
      : socket_(std::move(s)), timer_(socket_.get_executor()), buf_(kMaxHead), handler_(h) {}

  void start() {
    timer_.expires_after(kReadTimeout);
    timer_.async_wait([self = shared_from_this()](std::error_code ec) {
      if (!ec) self->close();
    });
    asio::async_read_until(socket_, buf_, "\r\n\r\n", [self = shared_from_this()](std::error_code ec, size_t n) {
      self->on_head(ec, n);
    });
  }

 private:
  void on_head(std::error_code ec, size_t n) {
    if (ec == asio::error::not_found) return respond({431, "text/plain; charset=utf-8", "request head too large\n"});
    if (ec) return close();
    std::string head(asio::buffers_begin(buf_.data()), asio::buffers_begin(buf_.data()) + std::ptrdiff_t(n));
    const auto line_end = head.find("\r\n");
    const std::string line = head.substr(0, line_end);
    const auto sp1 = line.find(' ');
    const auto sp2 = sp1 == std::string::npos ? std::string::npos : line.find(' ', sp1 + 1);
    if (sp2 == std::string::npos || line.compare(sp2 + 1, 5, "HTTP/") != 0)
      return respond({400, "text/plain; charset=utf-8", "malformed request line\n"});
    const std::string method = line.substr(0, sp1);
    std::string path = line.substr(sp1 + 1, sp2 - sp1 - 1);
    if (method != "GET" && method != "HEAD")
      return respond({405, "text/plain; charset=utf-8", "only GET is served\n"}, method == "HEAD");
    if (const auto q = path.find('?'); q != std::string::npos) path.resize(q);
    respond(handler_(path), method == "HEAD");
  }

  void respond(const HttpResponse& r, bool head_only = false) {
    out_ = "HTTP/1.1 " + std::to_string(r.status) + " " + reason(r.status) + "\r\nContent-Type: " + r.content_type +
           "\r\nContent-Length: " + std::to_string(r.body.size()) + "\r\nConnection: close\r\n\r\n";
    if (!head_only) out_ += r.body;
    asio::async_write(socket_, asio::buffer(out_), [self = shared_from_this()](std::error_code ec, size_t) {
      if (ec) return self->close();
      // Lingering close: stop sending, then read what the client still sends until it closes
      // (bounded by the timer), so that unread request bytes do not reset the connection
      // before the client has read the response.
      std::error_code ignored;
      self->socket_.shutdown(tcp::socket::shutdown_send, ignored);
      self->drain();
    });
  }

  void drain() {
    socket_.async_read_some(asio::buffer(scratch_), [self = shared_from_this()](std::error_code ec, size_t) {
      if (ec) return self->close();
      self->drain();
    });
  }

  void close() {
    std::error_code ignored;
    timer_.cancel();
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

  tcp::socket socket_;
  asio::steady_timer timer_;
  asio::streambuf buf_;
  HttpHandler handler_;
  std::string out_;
  std::array<char, 4096> scratch_;
};

}  // namespace

Result<std::unique_ptr<HttpEndpoint>> HttpEndpoint::create(asio::io_context& io, const std::string& listen,
                                                           HttpHandler handler) {
  auto hp = net::parse_host_port(listen);
  if (!hp.ok()) return hp.status();
  std::error_code ec;
  auto addr = asio::ip::make_address(hp->host, ec);
  if (ec) return detail::invalid_argument("HTTP listen address \"", hp->host, "\" is not an IP address");
  std::unique_ptr<HttpEndpoint> e(new HttpEndpoint(io, std::move(handler)));
  tcp::endpoint ep(addr, hp->port);
  e->acceptor_.open(ep.protocol(), ec);
  if (!ec) e->acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) e->acceptor_.bind(ep, ec);
  if (!ec) e->acceptor_.listen(64, ec);
  if (ec) return detail::unavailable("cannot listen for HTTP on ", listen, ": ", ec.message());
  e->port_ = e->acceptor_.local_endpoint(ec).port();
  return e;
}

void HttpEndpoint::start() { accept(); }

void HttpEndpoint::stop() {
  asio::post(io_, [this] {
    std::error_code ignored;
    acceptor_.close(ignored);
  });
}

void HttpEndpoint::accept() {
  acceptor_.async_accept(asio::make_strand(io_), [this](std::error_code ec, tcp::socket s) {
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
      detail::logger()->warn("HTTP accept failed: {}", ec.message());
    } else {
      std::make_shared<HttpConnection>(std::move(s), handler_)->start();
    }
    accept();
  });
}

}  // namespace libsplit::server
