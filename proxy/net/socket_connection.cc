#include "proxy/net/socket_connection.h"

#include <event2/event.h>
#include <unistd.h>

#include <cerrno>

namespace viscount {
namespace {
// Reads per readiness event before yielding to other connections (fairness under floods).
constexpr int kMaxReadsPerEvent = 8;
}  // namespace

SocketConnection::SocketConnection(EventLoop& loop, int fd)
    : loop_(loop), in_(&loop.buffers()), out_(&loop.buffers()), fd_(fd) {}

SocketConnection::~SocketConnection() {
  closeSocket();
}

void SocketConnection::startEvents() {
  event_assign(&event_, loop_.base(), fd_, EV_READ | EV_WRITE | EV_CLOSED | EV_ET | EV_PERSIST,
               &SocketConnection::onEvent, this);
  event_add(&event_, nullptr);
  events_started_ = true;
}

void SocketConnection::closeSocket() {
  if (fd_ < 0) return;
  if (events_started_) event_del(&event_);
  events_started_ = false;
  if (tls_) tls_->shutdown();
  ::close(fd_);
  fd_ = -1;
  leaveList();  // no pending flush for a closed socket
  in_.release();
  out_.release();
}

int SocketConnection::releaseSocket(std::unique_ptr<TlsSession>* tls) {
  if (events_started_) event_del(&event_);
  events_started_ = false;
  leaveList();
  *tls = std::move(tls_);
  const int fd = fd_;
  fd_ = -1;
  return fd;
}

void SocketConnection::onEvent(evutil_socket_t, short what, void* arg) {
  static_cast<SocketConnection*>(arg)->handleEvent(what);
}

void SocketConnection::handleEvent(short what) {
  if (connecting_ && (what & (EV_WRITE | EV_READ | EV_CLOSED))) {
    connecting_ = false;
    onConnectWritable();
    if (fd_ < 0) return;
  }
  if (handshaking_) {
    continueHandshake();
    return;
  }
  if (what & EV_WRITE) {
    if (read_wants_write_ && !read_disabled_) {
      read_wants_write_ = false;
      readAvailable();
      if (fd_ < 0) return;
    }
    if (write_blocked_ && !write_wants_read_) {
      write_blocked_ = false;
      flush();
      if (fd_ < 0) return;
    }
  }
  if (what & (EV_READ | EV_CLOSED)) {
    // The peer's FIN may come in the same edge as its last bytes; once it has been seen, a
    // short read no longer means "drained": read on until EOF.
    if (what & EV_CLOSED) peer_closed_ = true;
    if (write_wants_read_) {
      write_blocked_ = write_wants_read_ = false;
      flush();
      if (fd_ < 0) return;
    }
    if (read_disabled_) {
      read_pending_ = true;
      if (what & EV_CLOSED) onPeerHalfClosedWhileBlocked();
      return;
    }
    readAvailable();
  }
}

void SocketConnection::startTlsHandshake(std::unique_ptr<TlsSession> session) {
  tls_ = std::move(session);
  handshaking_ = true;
  continueHandshake();
}

void SocketConnection::continueHandshake() {
  const int r = tls_->handshake();
  if (r == 0) return;  // the next edge continues it
  handshaking_ = false;
  if (r > 0) {
    onTlsHandshakeDone(true, {});
    // Bytes that came with the last handshake flight (a TLS 1.3 ticket, say) wait in OpenSSL
    // or the socket; their edge is spent, so look once more.
    if (fd_ >= 0 && !read_disabled_) event_active(&event_, EV_READ, 0);
  } else {
    onTlsHandshakeDone(false, tls_->lastError());
  }
}

void SocketConnection::readSoon() {
  if (events_started_ && !read_disabled_) event_active(&event_, EV_READ, 0);
}

void SocketConnection::setReadDisabled(bool disabled) {
  if (read_disabled_ == disabled) return;
  read_disabled_ = disabled;
  if (!disabled && read_pending_ && fd_ >= 0) {
    // The edge for those bytes has already fired; ask libevent to call us again this turn.
    read_pending_ = false;
    event_active(&event_, EV_READ, 0);
  }
}

void SocketConnection::readAvailable() {
  read_pending_ = false;
  for (int i = 0; i < kMaxReadsPerEvent; ++i) {
    size_t budget = readBudget();
    if (budget == 0) {
      read_pending_ = true;
      return;
    }
    if (budget > BufferCache::kBlockSize) budget = BufferCache::kBlockSize;
    char* p = in_.reserve(budget);
    const size_t room = in_.tailroom() < budget ? in_.tailroom() : budget;
    const ssize_t n = tls_ ? tls_->read(p, room) : ::read(fd_, p, room);
    if (n > 0) {
      in_.commit(static_cast<size_t>(n));
      onData();
      if (fd_ < 0) return;
      // A short read drains a plain socket (as far as we know); TLS returns one record at a
      // time, so it reads on until it says it needs more from the socket. In the middle of a
      // message, one more read finds a reset or EOF that came with these bytes.
      if (!tls_ && static_cast<size_t>(n) < room && !peer_closed_ && !awaitingInput()) return;
      if (read_disabled_) {
        read_pending_ = true;
        return;
      }
      continue;
    }
    if (n == 0) {
      onPeerClosed();
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (tls_ && tls_->wantsWrite()) read_wants_write_ = true;
      return;
    }
    onSocketError(errno);
    return;
  }
  // Still more to read: come back after other connections had their turn.
  read_pending_ = true;
  if (!read_disabled_) {
    read_pending_ = false;
    event_active(&event_, EV_READ, 0);
  }
}

void SocketConnection::flush() {
  if (!beforeWrite()) return;
  writeOut();
  if (fd_ >= 0) afterWrite();
}

void SocketConnection::writeOut() {
  if (fd_ < 0 || write_blocked_ || connecting_) return;
  bool wrote = false;
  while (!out_.empty()) {
    const ssize_t n = tls_ ? tls_->write(out_.data(), out_.size())
                           : ::send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL);
    if (n > 0) {
      wrote = true;
      bytes_written_ += static_cast<uint64_t>(n);
      // A short send means the socket is full; TLS writes a record at a time, so it goes on
      // until it says the socket would block.
      const bool partial = !tls_ && static_cast<size_t>(n) < out_.size();
      out_.consume(static_cast<size_t>(n));
      if (partial) {
        write_blocked_ = true;
        break;
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      write_blocked_ = true;
      write_wants_read_ = tls_ && !tls_->wantsWrite();
      break;
    }
    onSocketError(n < 0 ? errno : EPIPE);
    return;
  }
  afterSend(wrote);
}

void SocketConnection::afterSend(bool wrote) {
  if (out_.empty()) {
    // Also when nothing was written: the end of a close-delimited response adds no bytes but
    // still has to be noticed as "everything sent".
    out_.release();
    onOutputDrained();
  } else if (wrote) {
    onOutputProgress();
  }
}

bool SocketConnection::prepareFlush() {
  if (tls_ || fd_ < 0) {
    flush();  // TLS writes go through OpenSSL, one connection at a time
    return false;
  }
  if (!beforeWrite()) return false;
  if (fd_ < 0 || write_blocked_ || connecting_ || out_.empty()) {
    writeOut();
    if (fd_ >= 0) afterWrite();
    return false;
  }
  return true;
}

bool SocketConnection::queueSend(SendBatch& batch) {
  // Prepared twice in one round (its flush was asked for again meanwhile): one send covers both.
  if (fd_ < 0 || write_blocked_ || out_.empty() || send_queued_) return false;
  send_queued_ = true;
  batch.add(fd_, out_.data(), out_.size());
  return true;
}

void SocketConnection::completeSend(ssize_t result, size_t length) {
  send_queued_ = false;
  if (fd_ < 0) return;  // closed by what an earlier result set off
  if (result > 0) {
    bytes_written_ += static_cast<uint64_t>(result);
    out_.consume(static_cast<size_t>(result));
    if (static_cast<size_t>(result) < length) {
      write_blocked_ = true;  // the socket is full: EPOLLOUT resumes it
    } else if (!out_.empty()) {
      scheduleWrite();  // added while the batch was out
    }
  } else if (result == -EAGAIN || result == -EWOULDBLOCK) {
    write_blocked_ = true;
  } else if (result == -EINTR || result == -ECANCELED) {
    scheduleWrite();  // it never went: again in the next round
    return;
  } else {
    onSocketError(result < 0 ? static_cast<int>(-result) : EPIPE);
    return;
  }
  afterSend(result > 0);
  if (fd_ >= 0) afterWrite();
}

}  // namespace viscount
