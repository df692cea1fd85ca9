#pragma once

// What a worker knows of a client connection, whatever protocol it speaks: HTTP/1.x
// (Http1ServerConnection) or HTTP/2 (Http2ServerConnection). Every connection starts as HTTP/1;
// the HTTP/2 connection preface (or ALPN "h2") hands the socket over to an HTTP/2 connection.

#include <cstddef>

#include "proxy/net/event_loop.h"
#include "proxy/net/intrusive_list.h"
#include "proxy/net/socket_connection.h"

namespace viscount {

struct ConnectionListTag {};

class ClientConnection : public SocketConnection, public ListHook<ConnectionListTag> {
 public:
  ClientConnection(EventLoop& loop, int fd, size_t listener_index)
      : SocketConnection(loop, fd), listener_index_(listener_index) {}

  // Drain: close now when idle, else once the requests in flight have been answered.
  virtual void drain() = 0;
  // Drain timeout: requests still waiting for their response get 503 `draining` (the client may
  // retry elsewhere); responses in progress are cut. The connection closes afterwards.
  virtual void abandon() = 0;
  // Shutdown: close now, whatever is in flight.
  virtual void abort() = 0;
  size_t listenerIndex() const { return listener_index_; }

 private:
  size_t listener_index_;
};

}  // namespace viscount
