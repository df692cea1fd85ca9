#pragma once

// One TCP socket on a worker's loop, registered once for edge-triggered read, write and peer
// close (a single epoll_ctl for the connection's whole life). Reads go straight into `in_`;
// writes are queued in `out_` and flushed once at the end of the loop turn, so a response head
// and body produced in the same turn leave in one write. Downstream (client) and upstream
// connections both build on it. With a TlsSession, reads and writes go through it instead of
// the socket: everything above sees plaintext.

#include <event2/event_struct.h>
#include <sys/types.h>

#include <cstddef>
#include <memory>

#include "proxy/net/buffer.h"
#include "proxy/net/event_loop.h"
#include "proxy/net/tls.h"

namespace viscount {

class SocketConnection : public Flushable {
 public:
  SocketConnection(EventLoop& loop, int fd);
  SocketConnection(const SocketConnection&) = delete;
  SocketConnection& operator=(const SocketConnection&) = delete;
  ~SocketConnection() override;

  int fd() const { return fd_; }
  bool open() const { return fd_ >= 0; }
  size_t bufferedOutput() const { return out_.size(); }
  uint64_t bytesWritten() const { return bytes_written_; }
  EventLoop& loop() { return loop_; }
  // Encrypts the connection; call before the first read.
  void useTls(std::unique_ptr<TlsSession> session) { tls_ = std::move(session); }
  const TlsSession* tls() const { return tls_.get(); }
  TlsSession* tls() { return tls_.get(); }

 protected:
  // Registers the socket with the loop; call once the fd is accepted or connecting.
  void startEvents();
  // For connections created before their socket exists (outbound connects).
  void adoptFd(int fd) { fd_ = fd; }
  // Queue output and make sure it is written at the end of this turn.
  void scheduleWrite() { loop_.scheduleFlush(*this); }
  // Look for input again in this turn (after a hand-over, whose read edge was spent).
  void readSoon();
  // Stop or resume reading (backpressure). Resuming re-reads anything the kernel still holds.
  void setReadDisabled(bool disabled);
  // Closes the socket now; further events are not delivered. Idempotent.
  void closeSocket();
  // Gives the open socket (and its TLS session) to another connection object: events stop here
  // and nothing is closed. Unread input in in_ stays for the caller to pass on.
  int releaseSocket(std::unique_ptr<TlsSession>* tls);
  // TLS client: runs the handshake on the connected socket before any data flows, then calls
  // onTlsHandshakeDone (maybe before this returns).
  void startTlsHandshake(std::unique_ptr<TlsSession> session);
  virtual void onTlsHandshakeDone(bool /*ok*/, const std::string& /*reason*/) {}

  // New bytes were appended to in_.
  virtual void onData() = 0;
  // read() returned 0: the peer will send nothing more.
  virtual void onPeerClosed() = 0;
  // A socket error (ECONNRESET, EPIPE, ...).
  virtual void onSocketError(int err) = 0;
  // The peer half-closed while reads are disabled (we are not reading its bytes yet).
  virtual void onPeerHalfClosedWhileBlocked() {}
  // All queued output was written.
  virtual void onOutputDrained() {}
  // Some queued output was written (used for low-watermark resumes).
  virtual void onOutputProgress() {}
  // The first writable event of a connecting socket; return false if the connection failed.
  virtual void onConnectWritable() {}
  // How many more bytes in_ may hold; reading stops at 0.
  virtual size_t readBudget() const { return BufferCache::kBlockSize; }
  // True while a message from the peer is only partly read. A short read then does not end the
  // reading: the socket is read once more, because a reset that arrived with the last bytes
  // fires its edge only once, and libevent reports it (EPOLLERR) as plain EV_READ|EV_WRITE,
  // without EV_CLOSED. Stopping at the short read would leave the connection waiting for the
  // rest of the message until a timeout, blaming the wrong side.
  virtual bool awaitingInput() const { return false; }

  // flush() = beforeWrite(), the write, afterWrite(). beforeWrite makes the output of this turn
  // final (a codec pumping its session into out_); false when the connection closed meanwhile.
  void flush() override;
  virtual bool beforeWrite() { return true; }
  virtual void afterWrite() {}
  bool prepareFlush() override;
  bool queueSend(SendBatch& batch) override;
  void completeSend(ssize_t result, size_t length) override;

  EventLoop& loop_;
  Buffer in_;
  Buffer out_;

 private:
  static void onEvent(evutil_socket_t fd, short what, void* arg);
  void handleEvent(short what);
  void readAvailable();
  void continueHandshake();
  void writeOut();
  // After some output went: drained, or progress (and more to write when not blocked).
  void afterSend(bool wrote);

  // Ordered to leave no padding: every idle connection has these.
  event event_{};
  uint64_t bytes_written_ = 0;
  std::unique_ptr<TlsSession> tls_;
  int fd_;
  bool events_started_ = false;
  bool read_disabled_ = false;
  bool read_pending_ = false;   // the kernel may hold unread bytes (edge already consumed)
  bool write_blocked_ = false;  // waiting for EPOLLOUT
  bool peer_closed_ = false;    // EPOLLRDHUP seen: read until EOF
  bool handshaking_ = false;
  bool read_wants_write_ = false;  // TLS: a read must wait for the socket to take output
  bool write_wants_read_ = false;  // TLS: a write must wait for input (e.g. a key update)
  bool send_queued_ = false;       // a send of out_ waits in the loop's batch

 protected:
  bool connecting_ = false;
};

}  // namespace viscount
