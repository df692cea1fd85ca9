#include "pool/upstream_connection.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "pool/upstream_pool.h"

namespace viscount {

UpstreamConnection::UpstreamConnection(UpstreamPool& pool, EventLoop& loop,
                                       const ResolvedAddress& address)
    : SocketConnection(loop, -1),
      pool_(pool),
      address_(address),
      address_text_(address.text()),
      timer_(loop.timers(), &UpstreamConnection::onTimer, this),
      created_at_(Clock::now()) {}

UpstreamConnection::~UpstreamConnection() = default;

void UpstreamConnection::connect() {
  const int fd = startConnect(address_);
  if (fd < 0) {
    const int err = errno;
    pool_.onConnectFailed(*this, ErrorCode::kUpstreamConnectFailed, std::strerror(err));
    return;
  }
  adoptFd(fd);
  connecting_ = true;
  startEvents();
  timer_.arm(pool_.config().timeouts.connect);
}

void UpstreamConnection::onConnectWritable() {
  const int err = connectResult(fd());
  if (err != 0) {
    timer_.cancel();
    closeSocket();
    pool_.onConnectFailed(*this, ErrorCode::kUpstreamConnectFailed, std::strerror(err));
    return;
  }
  if (const TlsClientContext* tls = pool_.tls()) {
    // The connect timeout covers the handshake too, as in Envoy.
    std::unique_ptr<TlsSession> session = tls->newSession(fd());
    if (!session) {
      onTlsHandshakeDone(false, "cannot set up a TLS session");
      return;
    }
    startTlsHandshake(std::move(session));
    return;
  }
  timer_.cancel();
  pool_.onConnected(*this);
}

void UpstreamConnection::onTlsHandshakeDone(bool ok, const std::string& reason) {
  timer_.cancel();
  if (ok) {
    pool_.onConnected(*this);
    return;
  }
  closeSocket();
  pool_.onConnectFailed(*this, ErrorCode::kUpstreamConnectFailed, "tls: " + reason);
}

void UpstreamConnection::onTimer(void* arg) {
  auto* self = static_cast<UpstreamConnection*>(arg);
  if (self->state_ == State::kConnecting) {
    self->closeSocket();
    self->pool_.onConnectFailed(*self, ErrorCode::kUpstreamConnectTimeout, "connect timed out");
  } else if (self->state_ == State::kIdle) {
    self->pool_.onIdleTimeout(*self);
  }
}

bool UpstreamConnection::stillOpen() {
  if (!open()) return false;
  if (TlsSession* session = tls()) return session->idleAndOpen();
  char byte;
  const ssize_t n = ::recv(fd(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  // Nothing to read is the only healthy answer: EOF means the upstream closed it, and bytes on
  // an idle HTTP/1 connection are a response to nothing.
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

void UpstreamConnection::close() {
  if (state_ == State::kClosed) return;
  closeSocket();
  pool_.onClosed(*this);
}

void UpstreamConnection::streamDone(bool reusable) {
  ++requests_;
  pool_.onStreamDone(*this, reusable && open());
}

void UpstreamConnection::idleConnectionBroken() {
  close();
}

}  // namespace viscount
