#pragma once

// A connection to an upstream, as the pool sees it: connecting, idle (kept for reuse) or busy
// (carrying streams). The connection owns the socket, the TLS session and the timers; the
// protocol on top is an UpstreamCodec, chosen by the pool once the transport is up: by the URL's
// scheme, and for https:// by the protocol the TLS handshake agreed on (ALPN). An HTTP/1 codec
// carries one request at a time, an HTTP/2 codec many streams at once.

#include <chrono>
#include <memory>
#include <string>

#include "pool/upstream_source.h"
#include "proxy/http/stream.h"
#include "proxy/net/event_loop.h"
#include "proxy/net/intrusive_list.h"
#include "proxy/net/socket.h"
#include "proxy/net/socket_connection.h"
#include "proxy/net/timer_queue.h"

namespace viscount {

class UpstreamPool;
class UpstreamConnection;

enum class UpstreamProtocol : unsigned char { kHttp1, kHttp2 };

// The protocol spoken on one upstream connection. The connection forwards its socket events;
// the codec reads `in()`, writes `out()` and reports back through the lifecycle calls of
// UpstreamConnection (ready, streamDone, capacityChanged, close, fail).
class UpstreamCodec {
 public:
  explicit UpstreamCodec(UpstreamConnection& connection) : connection_(connection) {}
  UpstreamCodec(const UpstreamCodec&) = delete;
  UpstreamCodec& operator=(const UpstreamCodec&) = delete;
  virtual ~UpstreamCodec() = default;

  // The transport is up. Calls connection.ready() once streams may start: at once (HTTP/1) or
  // when the peer's settings arrive (HTTP/2).
  virtual void start() = 0;
  // Starts a stream; the pool calls it only while streamCapacity() > 0.
  virtual UpstreamStream& newStream(UpstreamStreamCallbacks& callbacks) = 0;
  // Streams not finished yet, and how many more may start now.
  virtual size_t activeStreams() const = 0;
  virtual size_t streamCapacity() const = 0;
  // pool_pre_ping on an idle connection: the peer has not closed it.
  virtual bool idleAndOpen() = 0;
  // Carries streams side by side (HTTP/2) rather than one after another (HTTP/1).
  virtual bool multiplexed() const { return false; }

  // Socket events, as SocketConnection delivers them.
  virtual void onData() = 0;
  virtual void onPeerClosed() = 0;
  virtual void onSocketError(int err) = 0;
  virtual void onOutputDrained() {}
  virtual void onOutputProgress() {}
  virtual size_t readBudget() const { return BufferCache::kBlockSize; }
  // A message (HTTP/1) or stream (HTTP/2) from the peer is in progress: see
  // SocketConnection::awaitingInput.
  virtual bool awaitingInput() const { return false; }
  // Just before the connection writes `out()`: the last chance to add to it this turn.
  virtual void prepareOutput() {}

 protected:
  Buffer& in();
  const Buffer& in() const;
  Buffer& out();
  void scheduleWrite();
  void setReadDisabled(bool disabled);

  UpstreamConnection& connection_;
};

class UpstreamConnection final : public SocketConnection,
                                 public ListHook<>,
                                 public PooledConnection {
 public:
  enum class State { kConnecting, kIdle, kBusy, kClosed };

  UpstreamConnection(UpstreamPool& pool, EventLoop& loop, const ResolvedAddress& address);
  ~UpstreamConnection() override;

  // Starts the non-blocking connect; failures are reported to the pool (maybe before return).
  void connect();

  // Starts a request on this connection (the pool says when it has room).
  UpstreamStream& newStream(UpstreamStreamCallbacks& callbacks) override;
  size_t activeStreams() const { return codec_ ? codec_->activeStreams() : 0; }
  size_t streamCapacity() const { return codec_ && open() ? codec_->streamCapacity() : 0; }
  bool multiplexed() const override { return codec_ && codec_->multiplexed(); }
  // pool_pre_ping: true when the peer has not closed the idle connection.
  bool stillOpen();
  // A socket check for codecs: neither EOF nor an error is waiting. `data_allowed`: bytes
  // waiting are fine (HTTP/2 control frames); otherwise they count as broken (HTTP/1).
  bool socketIdleAndOpen(bool data_allowed);

  // --- from the codec ---
  // Streams may start (the pool hands the connection out).
  void ready();
  // A stream ended; `reusable` when the connection can carry more streams after it.
  void streamDone(bool reusable);
  // The connection can take more streams, or fewer (settings, GOAWAY).
  void capacityChanged();
  // The connection carries a tunnel now (an HTTP/1 upgrade): it never returns to the pool and no
  // longer counts against the pool's connection limit. It closes like any other.
  void detachFromPool();
  // Closes and tells the pool; the object is deleted at the end of the turn.
  void close();
  // Closes a connection that never became ready (a connect failure for the waiting request),
  // or any other like close().
  void fail(ErrorCode code, const std::string& detail);

  State state() const { return state_; }
  const std::string& addressText() const override { return address_text_; }
  Clock::time_point createdAt() const override { return created_at_; }
  std::chrono::nanoseconds connectTime() const override { return connect_time_; }
  uint64_t streamsStarted() const override { return streams_started_; }
  uint64_t requestsServed() const override { return requests_; }
  UpstreamCodec* codec() { return codec_.get(); }
  UpstreamPool& pool() { return pool_; }

 private:
  friend class UpstreamPool;
  friend class UpstreamCodec;

  // SocketConnection: forwarded to the codec.
  void onData() override;
  void onPeerClosed() override;
  void onSocketError(int err) override;
  void onOutputDrained() override;
  void onOutputProgress() override;
  size_t readBudget() const override;
  bool awaitingInput() const override { return codec_ && codec_->awaitingInput(); }
  bool beforeWrite() override;

  void onConnectWritable() override;
  void onTlsHandshakeDone(bool ok, const std::string& reason) override;
  void transportReady();
  static void onTimer(void* arg);

  UpstreamPool& pool_;
  std::unique_ptr<UpstreamCodec> codec_;
  uint64_t requests_ = 0;
  ResolvedAddress address_;
  std::string address_text_;
  State state_ = State::kClosed;  // written by the pool only
  bool retired_ = false;          // the pool gives it no new streams (recycled, broken)
  bool lingering_ = false;        // idle beyond `size`: its timer is the short overflow linger
  bool detached_ = false;         // carries a tunnel: gave its unit of the limit back
  Timer timer_;                   // connect timeout while connecting, idle timeout while idle
  Clock::time_point created_at_;
  std::chrono::nanoseconds connect_time_{0};  // set when it became ready
  uint64_t streams_started_ = 0;
};

inline Buffer& UpstreamCodec::in() {
  return connection_.in_;
}
inline const Buffer& UpstreamCodec::in() const {
  return connection_.in_;
}
inline Buffer& UpstreamCodec::out() {
  return connection_.out_;
}
inline void UpstreamCodec::scheduleWrite() {
  connection_.scheduleWrite();
}
inline void UpstreamCodec::setReadDisabled(bool disabled) {
  connection_.setReadDisabled(disabled);
}

}  // namespace viscount
