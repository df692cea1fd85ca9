#pragma once

// Where a request gets its upstream stream from, as the request sees it: an UpstreamSource it
// asks (the pool) and the PooledConnection it is handed. The lifecycle talks only to these, so
// its unit test can hand it streams without sockets; UpstreamPool and UpstreamConnection are the
// real ones.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "proxy/http/errors.h"
#include "proxy/http/stream.h"
#include "proxy/net/intrusive_list.h"

namespace viscount {

// A connection with room for one more stream, handed to a waiting request.
class PooledConnection {
 public:
  virtual ~PooledConnection() = default;
  // Starts the request's stream on it.
  virtual UpstreamStream& newStream(UpstreamStreamCallbacks& callbacks) = 0;
  // Carries many streams at once (HTTP/2).
  virtual bool multiplexed() const = 0;
  // Requests it carried before this one: a reused HTTP/1 connection may have been closed by
  // the upstream just as the request went out.
  virtual uint64_t requestsServed() const = 0;
  virtual const std::string& addressText() const = 0;
  // For the request's timings and trail: streams started on it before this one (0 when it was
  // opened for this request), when it was opened, and how long its connect took (TCP, TLS and
  // an HTTP/2 greeting).
  virtual uint64_t streamsStarted() const = 0;
  virtual std::chrono::steady_clock::time_point createdAt() const = 0;
  virtual std::chrono::nanoseconds connectTime() const = 0;
};

struct PoolWaitTag {};

// A request waiting for a connection (a stream on one).
class PoolCallbacks : public ListHook<PoolWaitTag> {
 public:
  virtual ~PoolCallbacks() = default;
  virtual void onPoolReady(PooledConnection& connection) = 0;
  // `address` is the upstream address a connect was tried on (empty if none was).
  virtual void onPoolFailure(ErrorCode code, std::string_view detail, std::string_view address) = 0;
};

class UpstreamSource {
 public:
  virtual ~UpstreamSource() = default;
  // onPoolReady or onPoolFailure is called, possibly before acquire returns; otherwise the
  // waiter waits (the caller bounds the wait: pool.wait_timeout).
  virtual void acquire(PoolCallbacks& waiter) = 0;
  // The waiter gave up (client left, timeout): it will not be called back.
  virtual void cancel(PoolCallbacks& waiter) = 0;
};

}  // namespace viscount
