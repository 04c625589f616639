#include "net/stream.h"

#include "common/errors.h"

namespace libsplit::net {

#ifdef LIBSPLIT_HAVE_TLS

bool tls_available() { return true; }

namespace {

// TLS 1.2 or newer, no compression or renegotiation tricks: the defaults of a modern server.
std::shared_ptr<TlsContext> base_context(asio::ssl::context::method method) {
  auto ctx = std::make_shared<TlsContext>(method);
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1 |
                   asio::ssl::context::no_compression);
  return ctx;
}

Status load_pair(TlsContext& ctx, const std::string& cert_file, const std::string& key_file, const char* who) {
  std::error_code ec;
  ctx.use_certificate_chain_file(cert_file, ec);
  if (ec) return detail::invalid_argument(who, " certificate \"", cert_file, "\": ", ec.message());
  ctx.use_private_key_file(key_file, asio::ssl::context::pem, ec);
  if (ec) return detail::invalid_argument(who, " private key \"", key_file, "\": ", ec.message());
  if (SSL_CTX_check_private_key(ctx.native_handle()) != 1)
    return detail::invalid_argument(who, " private key \"", key_file, "\": key mismatch with the certificate \"", cert_file, "\"");
  return {};
}

}  // namespace

Result<std::shared_ptr<TlsContext>> make_server_tls(const std::string& cert_file, const std::string& key_file,
                                                    const std::string& client_ca_file) {
  if (cert_file.empty() || key_file.empty())
    return detail::invalid_argument("TLS needs both a certificate and a private key file");
  auto ctx = base_context(asio::ssl::context::tls_server);
  LIBSPLIT_RETURN_IF_ERROR(load_pair(*ctx, cert_file, key_file, "server"));
  if (!client_ca_file.empty()) {
    std::error_code ec;
    ctx->load_verify_file(client_ca_file, ec);
    if (ec) return detail::invalid_argument("client CA file \"", client_ca_file, "\": ", ec.message());
    ctx->set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
  }
  return ctx;
}

Result<std::shared_ptr<TlsContext>> make_client_tls(const std::string& ca_file, const std::string& cert_file,
                                                    const std::string& key_file) {
  auto ctx = base_context(asio::ssl::context::tls_client);
  std::error_code ec;
  if (ca_file.empty()) {
    ctx->set_default_verify_paths(ec);
    if (ec) return detail::invalid_argument("the system's trust store: ", ec.message());
  } else {
    ctx->load_verify_file(ca_file, ec);
    if (ec) return detail::invalid_argument("CA file \"", ca_file, "\": ", ec.message());
  }
  ctx->set_verify_mode(asio::ssl::verify_peer);
  if (!cert_file.empty() || !key_file.empty()) {
    if (cert_file.empty() || key_file.empty())
      return detail::invalid_argument("a client certificate needs both the certificate and the private key file");
    LIBSPLIT_RETURN_IF_ERROR(load_pair(*ctx, cert_file, key_file, "client"));
  }
  return ctx;
}

#else

bool tls_available() { return false; }

Result<std::shared_ptr<TlsContext>> make_server_tls(const std::string&, const std::string&, const std::string&) {
  return detail::failed_precondition("TLS was asked for, but libsplit was built without it (LIBSPLIT_WITH_TLS=OFF)");
}
Result<std::shared_ptr<TlsContext>> make_client_tls(const std::string&, const std::string&, const std::string&) {
  return detail::failed_precondition("TLS was asked for, but libsplit was built without it (LIBSPLIT_WITH_TLS=OFF)");
}

#endif

}  // namespace libsplit::net
