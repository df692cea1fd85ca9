#pragma once

// TLS with OpenSSL 3 for client connections. A TlsServerContext is built once per listener and
// config (on the main thread, when the config is loaded or reloaded) and shared by every worker:
// an SSL_CTX is safe to use from many threads once set up. A reload builds a new one from the
// files on disk, so a renewed certificate is served to new connections while open ones keep the
// session they negotiated. A TlsSession is one connection's SSL object over its socket.

#include <sys/types.h>

#include <memory>
#include <string>
#include <string_view>

#include "config/config.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace viscount {

class TlsSession;

class TlsServerContext {
 public:
  // Loads the certificate chain, the private key and, for mTLS, the client CA file. nullptr and
  // `error` (naming the file and OpenSSL's reason) when any of them is unusable.
  static std::shared_ptr<TlsServerContext> create(const TlsServerConfig& config,
                                                  std::string* error);
  TlsServerContext(const TlsServerContext&) = delete;
  TlsServerContext& operator=(const TlsServerContext&) = delete;
  ~TlsServerContext();

  // A server-side session over `fd`; the handshake runs as the first reads happen.
  std::unique_ptr<TlsSession> newSession(int fd) const;
  bool requiresClientCertificate() const { return verify_clients_; }

 private:
  TlsServerContext() = default;
  SSL_CTX* ctx_ = nullptr;
  bool verify_clients_ = false;
};

// Results in the style of read(2)/send(2): > 0 bytes, 0 for a clean close (close_notify), -1
// with errno EAGAIN when the session needs the socket to become readable or writable (wantsWrite
// tells which), or -1 with another errno for a failed handshake or a broken record.
class TlsSession {
 public:
  explicit TlsSession(SSL* ssl) : ssl_(ssl) {}
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;
  ~TlsSession();

  ssize_t read(char* into, size_t room);
  ssize_t write(const char* data, size_t size);
  // The last EAGAIN was for want of a writable socket (a handshake flight or key update).
  bool wantsWrite() const { return wants_write_; }
  // Decrypted bytes OpenSSL holds beyond what read() returned.
  bool hasBufferedInput() const;
  // Sends close_notify if the handshake finished; best effort, never blocks.
  void shutdown();

  bool handshakeDone() const;
  // "TLSv1.3", "TLSv1.2"; empty before the handshake.
  std::string_view version() const;
  // The ALPN protocol agreed ("http/1.1", "h2"), empty if none.
  std::string_view alpn() const;
  // The client presented a certificate that verified against client_ca.
  bool peerVerified() const;
  // OpenSSL's reason for the last failure (for the event log).
  const std::string& lastError() const { return last_error_; }

 private:
  ssize_t result(int ret);
  SSL* ssl_;
  bool wants_write_ = false;
  std::string last_error_;
};

}  // namespace viscount
