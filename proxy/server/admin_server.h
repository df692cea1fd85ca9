#pragma once

// The admin listener on the main thread: /healthz, /ready, /metrics, /config and POST /drain.
// Tiny and separate from the request path: one request per connection, answered from a handler
// the Server provides, then closed. The handler is given the caller's address, so it can keep
// the endpoints that change or reveal state to admin.control_from.

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <sys/socket.h>

#include "proxy/net/event_loop.h"
#include "proxy/net/intrusive_list.h"
#include "proxy/net/socket.h"
#include "proxy/net/timer_queue.h"

struct event;

namespace viscount {

struct AdminResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

class AdminConnection;

class AdminServer {
 public:
  using Handler = std::function<AdminResponse(std::string_view method, std::string_view path,
                                              const sockaddr_storage& peer)>;

  AdminServer(EventLoop& loop, Handler handler);
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;
  ~AdminServer();

  bool listen(const ResolvedAddress& address, std::string* error);
  uint16_t port() const { return port_; }
  void close();

 private:
  friend class AdminConnection;
  static void onAccept(int fd, short what, void* arg);
  static void onAcceptResume(void* arg);
  void connectionDone(AdminConnection& c);

  EventLoop& loop_;
  Handler handler_;
  int fd_ = -1;
  uint16_t port_ = 0;
  event* accept_event_ = nullptr;
  // Out of descriptors, the pending connection stays readable: accepting pauses rather than spin.
  Timer resume_;
  IntrusiveList<AdminConnection> connections_;
};

}  // namespace viscount
