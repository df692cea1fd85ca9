#include "proxy/net/tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>

namespace viscount {

namespace {

// The ALPN ids spoken, in order of preference (wire format: length-prefixed): HTTP/1.1 only, and
// h2 first, for listeners with HTTP/2 and for https:// upstreams (the pool picks the codec by
// the answer).
constexpr unsigned char kAlpnProtocols[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
constexpr unsigned char kAlpnH2First[] = {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

// Drains OpenSSL's error queue into one readable line.
std::string openSslErrors() {
  std::string out;
  while (const unsigned long code = ERR_get_error()) {
    char text[256];
    ERR_error_string_n(code, text, sizeof text);
    if (!out.empty()) out += "; ";
    out += text;
  }
  return out.empty() ? "unknown error" : out;
}

// `arg` is non-null for a listener that speaks HTTP/2.
int selectAlpn(SSL*, const unsigned char** out, unsigned char* out_len, const unsigned char* in,
               unsigned int in_len, void* arg) {
  unsigned char* chosen = nullptr;
  const unsigned char* ours = arg != nullptr ? kAlpnH2First : kAlpnProtocols;
  const unsigned int ours_len = arg != nullptr ? sizeof kAlpnH2First : sizeof kAlpnProtocols;
  if (SSL_select_next_proto(&chosen, out_len, ours, ours_len, in, in_len) !=
      OPENSSL_NPN_NEGOTIATED) {
    // RFC 7301: the client insists on protocols we do not speak.
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

// What both sides share: TLS 1.2 at least, no renegotiation (a DoS lever), partial writes, a
// write buffer that may move between retries, and no read/write buffers kept for idle
// connections (about 34 KiB each otherwise). nullptr and `error` on failure.
SSL_CTX* newContext(const SSL_METHOD* method, uint64_t extra_options, std::string* error) {
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(method);
  if (ctx == nullptr) {
    *error = "tls: " + openSslErrors();
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | extra_options);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  return ctx;
}

// Loads a certificate chain and its private key; the error names the file at fault, and says so
// when the key belongs to another certificate.
bool useKeyPair(SSL_CTX* ctx, const std::string& certificate, const std::string& private_key,
                std::string* error) {
  if (SSL_CTX_use_certificate_chain_file(ctx, certificate.c_str()) != 1) {
    *error = "tls certificate " + certificate + ": " + openSslErrors();
    return false;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, private_key.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    const bool mismatch = ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH;
    *error = "tls private_key " + private_key +
             (mismatch ? " does not match certificate " + certificate : std::string()) + ": " +
             openSslErrors();
    return false;
  }
  return true;
}

}  // namespace

std::shared_ptr<TlsServerContext> TlsServerContext::create(const TlsServerConfig& config,
                                                           bool http2, std::string* error) {
  // The server's cipher order for TLS 1.2.
  SSL_CTX* ctx = newContext(TLS_server_method(), SSL_OP_CIPHER_SERVER_PREFERENCE, error);
  if (ctx == nullptr) return nullptr;
  std::shared_ptr<TlsServerContext> context(new TlsServerContext());
  context->ctx_ = ctx;
  if (!useKeyPair(ctx, config.certificate, config.private_key, error)) return nullptr;
  if (!config.client_ca.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, config.client_ca.c_str(), nullptr) != 1) {
      *error = "tls client_ca " + config.client_ca + ": " + openSslErrors();
      return nullptr;
    }
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(config.client_ca.c_str());
    if (names != nullptr) SSL_CTX_set_client_CA_list(ctx, names);  // takes ownership
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    context->verify_clients_ = true;
  }
  // Resumption: TLS 1.3 tickets and the TLS 1.2 session cache, shared by all workers.
  static const unsigned char kSessionContext[] = "viscount";
  SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
  static int h2_marker = 0;
  SSL_CTX_set_alpn_select_cb(ctx, &selectAlpn, http2 ? &h2_marker : nullptr);
  return context;
}

TlsServerContext::~TlsServerContext() {
  SSL_CTX_free(ctx_);
}

std::unique_ptr<TlsSession> TlsServerContext::newSession(int fd) const {
  SSL* ssl = SSL_new(ctx_);
  if (ssl == nullptr) return nullptr;
  if (SSL_set_fd(ssl, fd) != 1) {
    SSL_free(ssl);
    return nullptr;
  }
  SSL_set_accept_state(ssl);
  return std::make_unique<TlsSession>(ssl);
}

std::shared_ptr<TlsClientContext> TlsClientContext::create(const UpstreamConfig& upstream,
                                                           std::string* error) {
  SSL_CTX* ctx = newContext(TLS_client_method(), 0, error);
  if (ctx == nullptr) return nullptr;
  std::shared_ptr<TlsClientContext> context(new TlsClientContext());
  context->ctx_ = ctx;
  const UpstreamConfig::Tls& tls = upstream.tls;
  context->verify_ = tls.verify;
  if (tls.verify) {
    const bool loaded = tls.ca_file.empty()
                            ? SSL_CTX_set_default_verify_paths(ctx) == 1
                            : SSL_CTX_load_verify_locations(ctx, tls.ca_file.c_str(), nullptr) == 1;
    if (!loaded) {
      *error = "tls ca_file " + (tls.ca_file.empty() ? "(system store)" : tls.ca_file) + ": " +
               openSslErrors();
      return nullptr;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  }
  if (!tls.certificate.empty() && !useKeyPair(ctx, tls.certificate, tls.private_key, error)) {
    return nullptr;
  }
  SSL_CTX_set_alpn_protos(ctx, kAlpnH2First, sizeof kAlpnH2First);
  context->server_name_ = tls.server_name.empty() ? upstream.url.host : tls.server_name;
  context->name_is_ip_ =
      context->server_name_.find(':') != std::string::npos ||
      context->server_name_.find_first_not_of("0123456789.") == std::string::npos;
  return context;
}

TlsClientContext::~TlsClientContext() {
  SSL_CTX_free(ctx_);
}

std::unique_ptr<TlsSession> TlsClientContext::newSession(int fd) const {
  SSL* ssl = SSL_new(ctx_);
  if (ssl == nullptr) return nullptr;
  bool ok = SSL_set_fd(ssl, fd) == 1;
  if (ok && !name_is_ip_) ok = SSL_set_tlsext_host_name(ssl, server_name_.c_str()) == 1;
  if (ok && verify_) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    ok = name_is_ip_ ? X509_VERIFY_PARAM_set1_ip_asc(param, server_name_.c_str()) == 1
                     : SSL_set1_host(ssl, server_name_.c_str()) == 1;
  }
  if (!ok) {
    SSL_free(ssl);
    return nullptr;
  }
  SSL_set_connect_state(ssl);
  return std::make_unique<TlsSession>(ssl);
}

int TlsSession::handshake() {
  ERR_clear_error();
  const int ret = SSL_do_handshake(ssl_);
  if (ret == 1) return 1;
  const int err = SSL_get_error(ssl_, ret);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
    wants_write_ = err == SSL_ERROR_WANT_WRITE;
    return 0;
  }
  const long verify = SSL_get_verify_result(ssl_);
  last_error_ = verify != X509_V_OK ? std::string("certificate verify failed: ") +
                                          X509_verify_cert_error_string(verify)
                                    : openSslErrors();
  if (err == SSL_ERROR_SYSCALL && last_error_ == "unknown error") {
    last_error_ = "connection closed during the handshake";
  }
  return -1;
}

bool TlsSession::idleAndOpen(bool data_allowed) {
  ERR_clear_error();
  char byte;
  const int n = SSL_peek(ssl_, &byte, 1);
  if (n > 0) return data_allowed;  // HTTP/1: data on an idle connection answers nothing
  const int err = SSL_get_error(ssl_, n);
  ERR_clear_error();
  return err == SSL_ERROR_WANT_READ;
}

TlsSession::~TlsSession() {
  SSL_free(ssl_);
}

ssize_t TlsSession::read(char* into, size_t room) {
  ERR_clear_error();
  const int n = SSL_read(ssl_, into, static_cast<int>(room));
  return n > 0 ? n : result(n);
}

ssize_t TlsSession::write(const char* data, size_t size) {
  ERR_clear_error();
  const int n = SSL_write(ssl_, data, static_cast<int>(size));
  if (n > 0) return n;
  const ssize_t r = result(n);
  if (r == 0) {
    errno = EPIPE;  // the peer closed its side: nothing more can be written
    return -1;
  }
  return r;
}

ssize_t TlsSession::result(int ret) {
  const int saved_errno = errno;
  wants_write_ = false;
  switch (SSL_get_error(ssl_, ret)) {
    case SSL_ERROR_WANT_READ:
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_WANT_WRITE:
      wants_write_ = true;
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_ZERO_RETURN:
      return 0;  // close_notify
    case SSL_ERROR_SYSCALL:
      ERR_clear_error();
      // An EOF without close_notify reads as a close, as with plain TCP; HTTP framing tells
      // whether a message was cut short.
      if (saved_errno == 0) return 0;
      errno = saved_errno;
      last_error_ = std::strerror(saved_errno);
      return -1;
    default:
      last_error_ = openSslErrors();
      errno = EPROTO;
      return -1;
  }
}

bool TlsSession::hasBufferedInput() const {
  return SSL_pending(ssl_) > 0;
}

void TlsSession::shutdown() {
  if (SSL_is_init_finished(ssl_)) {
    ERR_clear_error();
    SSL_shutdown(ssl_);
    ERR_clear_error();
  }
}

bool TlsSession::handshakeDone() const {
  return SSL_is_init_finished(ssl_) != 0;
}

std::string_view TlsSession::version() const {
  return handshakeDone() ? std::string_view(SSL_get_version(ssl_)) : std::string_view();
}

std::string_view TlsSession::alpn() const {
  const unsigned char* data = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(ssl_, &data, &len);
  return data == nullptr ? std::string_view()
                         : std::string_view(reinterpret_cast<const char*>(data), len);
}

std::string TlsSession::peerCommonName() const {
  if (!peerVerified()) return {};
  X509_NAME* subject = X509_get_subject_name(SSL_get0_peer_certificate(ssl_));
  const int at = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (at < 0) return {};
  // A second CN makes the name ambiguous: no user rather than a guess.
  if (X509_NAME_get_index_by_NID(subject, NID_commonName, at) >= 0) return {};
  const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at));
  unsigned char* utf8 = nullptr;
  const int length = ASN1_STRING_to_UTF8(&utf8, data);
  if (length < 0) return {};
  std::string name(reinterpret_cast<const char*>(utf8), static_cast<size_t>(length));
  OPENSSL_free(utf8);
  return name;
}

bool TlsSession::peerVerified() const {
  X509* peer = SSL_get0_peer_certificate(ssl_);
  return peer != nullptr && SSL_get_verify_result(ssl_) == X509_V_OK;
}

}  // namespace viscount
