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

UpstreamConnection::~UpstreamConnection() {
  // The codec's streams and session go before the socket they were written to.
  codec_.reset();
}

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
  transportReady();
}

void UpstreamConnection::onTlsHandshakeDone(bool ok, const std::string& reason) {
  if (ok) {
    transportReady();
    return;
  }
  timer_.cancel();
  closeSocket();
  pool_.onConnectFailed(*this, ErrorCode::kUpstreamConnectFailed, "tls: " + reason);
}

void UpstreamConnection::transportReady() {
  // The connect timer keeps running: it also bounds the codec's greeting (HTTP/2 settings).
  codec_ = pool_.makeCodec(*this, tls() ? tls()->alpn() : std::string_view());
  codec_->start();
}

void UpstreamConnection::ready() {
  if (state_ != State::kConnecting) return;
  timer_.cancel();
  connect_time_ = Clock::now() - created_at_;
  pool_.onConnected(*this);
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

UpstreamStream& UpstreamConnection::newStream(UpstreamStreamCallbacks& callbacks) {
  ++streams_started_;
  return codec_->newStream(callbacks);
}

bool UpstreamConnection::stillOpen() {
  return open() && codec_ && codec_->idleAndOpen();
}

bool UpstreamConnection::socketIdleAndOpen(bool data_allowed) {
  if (!open()) return false;
  if (TlsSession* session = tls()) {
    if (!session->idleAndOpen(data_allowed)) return false;
    // The peek may have moved a record into OpenSSL's buffer, where no socket edge will
    // announce it: read it this turn.
    if (session->hasBufferedInput()) readSoon();
    return true;
  }
  char byte;
  const ssize_t n = ::recv(fd(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n > 0) return data_allowed;
  // Otherwise nothing to read is the only healthy answer: EOF means the upstream closed it.
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

void UpstreamConnection::detachFromPool() {
  if (state_ == State::kClosed || detached_) return;
  pool_.onDetached(*this);
}

void UpstreamConnection::close() {
  if (state_ == State::kClosed) return;
  closeSocket();
  pool_.onClosed(*this);
}

void UpstreamConnection::fail(ErrorCode code, const std::string& detail) {
  if (state_ != State::kConnecting) {
    close();
    return;
  }
  timer_.cancel();
  closeSocket();
  pool_.onConnectFailed(*this, code, detail);
}

void UpstreamConnection::streamDone(bool reusable) {
  ++requests_;
  if (state_ == State::kClosed) return;
  pool_.onStreamDone(*this, reusable && open());
}

void UpstreamConnection::capacityChanged() {
  if (state_ == State::kIdle || state_ == State::kBusy) pool_.onCapacityChanged(*this);
}

void UpstreamConnection::onData() {
  if (codec_) {
    codec_->onData();
  } else {
    in_.clear();  // nothing speaks before the transport is up
  }
}

void UpstreamConnection::onPeerClosed() {
  if (codec_) {
    codec_->onPeerClosed();
  } else {
    fail(ErrorCode::kUpstreamConnectFailed, "connection closed by the upstream");
  }
}

void UpstreamConnection::onSocketError(int err) {
  if (codec_) {
    codec_->onSocketError(err);
  } else {
    fail(ErrorCode::kUpstreamConnectFailed, std::strerror(err));
  }
}

void UpstreamConnection::onOutputDrained() {
  if (codec_) codec_->onOutputDrained();
}

void UpstreamConnection::onOutputProgress() {
  if (codec_) codec_->onOutputProgress();
}

size_t UpstreamConnection::readBudget() const {
  return codec_ ? codec_->readBudget() : BufferCache::kBlockSize;
}

bool UpstreamConnection::beforeWrite() {
  if (codec_ && open()) codec_->prepareOutput();
  return true;
}

}  // namespace viscount
