// A connection's byte stream, shared by the server and the client: a TCP socket, or TLS over one
// (built with LIBSPLIT_WITH_TLS: Asio's SSL support over OpenSSL). Reads and writes go to
// whichever is in use; socket() is the TCP socket underneath (options, shutdown, close).
// Like any Asio stream it is not thread-safe: one read and one write at a time, from one strand.
#pragma once

#include <memory>
#include <string>
#include <utility>

#include <asio.hpp>
#ifdef LIBSPLIT_HAVE_TLS
#include <asio/ssl.hpp>
#endif

#include "libsplit/status.h"

namespace libsplit::net {

#ifdef LIBSPLIT_HAVE_TLS
using TlsContext = asio::ssl::context;
#else
struct TlsContext {};  // a build without TLS never makes one
#endif

// Whether this build can speak TLS.
bool tls_available();

// Server side: the certificate chain and private key (PEM) it presents; with client_ca_file,
// every client must present a certificate that chains to it.
Result<std::shared_ptr<TlsContext>> make_server_tls(const std::string& cert_file, const std::string& key_file,
                                                    const std::string& client_ca_file);
// Client side: the server's certificate must chain to ca_file (PEM; "" = the system's trust
// store); cert_file and key_file, when given, are the client's own certificate.
Result<std::shared_ptr<TlsContext>> make_client_tls(const std::string& ca_file, const std::string& cert_file,
                                                    const std::string& key_file);

class Stream {
 public:
  explicit Stream(asio::ip::tcp::socket socket) : plain_(std::move(socket)) {}

  // Wraps the socket in TLS; the TLS handshake is the caller's next step (handshake()).
  void start_tls(TlsContext& ctx) {
#ifdef LIBSPLIT_HAVE_TLS
    tls_ = std::make_unique<asio::ssl::stream<asio::ip::tcp::socket>>(std::move(plain_), ctx);
#else
    (void)ctx;
#endif
  }
  bool is_tls() const {
#ifdef LIBSPLIT_HAVE_TLS
    return tls_ != nullptr;
#else
    return false;
#endif
  }
  asio::ip::tcp::socket& socket() {
#ifdef LIBSPLIT_HAVE_TLS
    if (tls_) return tls_->next_layer();
#endif
    return plain_;
  }
#ifdef LIBSPLIT_HAVE_TLS
  asio::ssl::stream<asio::ip::tcp::socket>* tls() { return tls_.get(); }
#endif

  template <typename Buffers, typename Handler>
  void async_read_some(const Buffers& b, Handler&& h) {
#ifdef LIBSPLIT_HAVE_TLS
    if (tls_) return tls_->async_read_some(b, std::forward<Handler>(h));
#endif
    plain_.async_read_some(b, std::forward<Handler>(h));
  }
  template <typename Buffers, typename Handler>
  void async_read(const Buffers& b, Handler&& h) {  // exactly the buffers' size
#ifdef LIBSPLIT_HAVE_TLS
    if (tls_) return asio::async_read(*tls_, b, std::forward<Handler>(h));
#endif
    asio::async_read(plain_, b, std::forward<Handler>(h));
  }
  template <typename Buffers, typename Handler>
  void async_write(const Buffers& b, Handler&& h) {  // all of the buffers
#ifdef LIBSPLIT_HAVE_TLS
    if (tls_) return asio::async_write(*tls_, b, std::forward<Handler>(h));
#endif
    asio::async_write(plain_, b, std::forward<Handler>(h));
  }

 private:
  asio::ip::tcp::socket plain_;
#ifdef LIBSPLIT_HAVE_TLS
  std::unique_ptr<asio::ssl::stream<asio::ip::tcp::socket>> tls_;
#endif
};

}  // namespace libsplit::net
