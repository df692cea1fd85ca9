#pragma once

// A connection to an upstream, as the pool sees it: connecting, idle (kept for reuse) or busy
// (carrying requests). The protocol on top (HTTP/1 now, HTTP/2 later) is a subclass; the pool
// only needs to open it, hand it out, take it back and close it.

#include <chrono>
#include <string>

#include "proxy/event_loop.h"
#include "proxy/intrusive_list.h"
#include "proxy/socket.h"
#include "proxy/socket_connection.h"
#include "proxy/stream.h"
#include "proxy/timer_queue.h"

namespace viscount {

class UpstreamPool;

class UpstreamConnection : public SocketConnection, public ListHook<> {
 public:
  enum class State { kConnecting, kIdle, kBusy, kClosed };

  UpstreamConnection(UpstreamPool& pool, EventLoop& loop, const ResolvedAddress& address);
  ~UpstreamConnection() override;

  // Starts the non-blocking connect; failures are reported to the pool (maybe before return).
  void connect();

  // Starts a request on this (idle) connection.
  virtual UpstreamStream& newStream(UpstreamStreamCallbacks& callbacks) = 0;
  // pool_pre_ping: true when the peer has not closed the idle connection and sent nothing.
  bool stillOpen();
  // Closes and tells the pool; the object is deleted at the end of the turn.
  void close();

  State state() const { return state_; }
  const std::string& addressText() const { return address_text_; }
  Clock::time_point createdAt() const { return created_at_; }
  uint64_t requestsServed() const { return requests_; }

 protected:
  // The connection finished its request; `reusable` when the exchange left it clean.
  void streamDone(bool reusable);
  // The idle connection saw bytes or a close from the upstream.
  void idleConnectionBroken();

  UpstreamPool& pool_;
  uint64_t requests_ = 0;

 private:
  friend class UpstreamPool;
  void onConnectWritable() override;
  void onTlsHandshakeDone(bool ok, const std::string& reason) override;
  static void onTimer(void* arg);

  ResolvedAddress address_;
  std::string address_text_;
  State state_ = State::kClosed;  // written by the pool only
  Timer timer_;                   // connect timeout while connecting, idle timeout while idle
  Clock::time_point created_at_;
};

}  // namespace viscount
