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
  // `http2` offers h2 before http/1.1 in ALPN.
  static std::shared_ptr<TlsServerContext> create(const TlsServerConfig& config, bool http2,
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

// TLS towards an https:// upstream: one per upstream and config, shared by the workers.
class TlsClientContext {
 public:
  // Trusts `ca_file` (or the system store), verifies unless told not to, and loads the client
  // certificate for mTLS when given. nullptr and `error` when a file is unusable.
  static std::shared_ptr<TlsClientContext> create(const UpstreamConfig& upstream,
                                                  std::string* error);
  TlsClientContext(const TlsClientContext&) = delete;
  TlsClientContext& operator=(const TlsClientContext&) = delete;
  ~TlsClientContext();

  // A client session over `fd` that sends SNI and checks the certificate's name.
  std::unique_ptr<TlsSession> newSession(int fd) const;

 private:
  TlsClientContext() = default;
  SSL_CTX* ctx_ = nullptr;
  std::string server_name_;  // SNI (empty for an IP literal) and the name verified
  bool name_is_ip_ = false;
  bool verify_ = true;
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
  // Client side: advances the handshake. 1 done, 0 waiting for the socket (wantsWrite tells
  // which way), -1 failed (lastError says why, e.g. the certificate did not verify).
  int handshake();
  // pre_ping for an idle connection: true when the peer has not closed it and, unless
  // `data_allowed` (HTTP/2 control frames may wait), sent no data. Reads (and consumes) TLS
  // records without application data, such as TLS 1.3 session tickets.
  bool idleAndOpen(bool data_allowed = false);

  bool handshakeDone() const;
  // "TLSv1.3", "TLSv1.2"; empty before the handshake.
  std::string_view version() const;
  // The ALPN protocol agreed ("http/1.1", "h2"), empty if none.
  std::string_view alpn() const;
  // The client presented a certificate that verified against client_ca.
  bool peerVerified() const;
  // The verified peer certificate's subject CN; empty when there is none (or it has no CN).
  std::string peerCommonName() const;
  // OpenSSL's reason for the last failure (for the event log).
  const std::string& lastError() const { return last_error_; }

 private:
  ssize_t result(int ret);
  SSL* ssl_;
  bool wants_write_ = false;
  std::string last_error_;
};

}  // namespace viscount
