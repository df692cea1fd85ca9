#include "proxy/server/admin_server.h"

#include <event2/event.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

#include "proxy/http1/http1_encoder.h"
#include "proxy/http1/http1_parser.h"
#include "proxy/net/socket_connection.h"

namespace viscount {

class AdminConnection final : public SocketConnection,
                              public ListHook<>,
                              private Http1ParserHandler {
 public:
  AdminConnection(AdminServer& server, int fd, const sockaddr_storage& peer)
      : SocketConnection(server.loop_, fd),
        server_(server),
        peer_(peer),
        parser_(Http1Parser::Kind::kRequest, *this),
        timer_(server.loop_.timers(), &AdminConnection::onTimeout, this) {
    parser_.setMaxHeadBytes(16 * 1024);
  }

  void start() {
    startEvents();
    timer_.arm(std::chrono::seconds(10));
  }

  void finish() {
    if (done_) return;
    done_ = true;
    timer_.cancel();
    closeSocket();
    server_.connectionDone(*this);
  }

 private:
  void onData() override {
    if (answered_) {
      in_.clear();
      return;
    }
    const auto r = parser_.execute(in_.data(), parsed_, in_.size() - parsed_);
    if (r.status == Http1Parser::Status::kError) {
      respond({400, "text/plain; charset=utf-8", "bad request\n"});
      return;
    }
    parsed_ = parser_.inHeaders() ? in_.size() : 0;
    if (!parser_.inHeaders()) in_.clear();
  }
  void onPeerClosed() override { finish(); }
  void onSocketError(int) override { finish(); }
  void onOutputDrained() override {
    if (answered_) finish();
  }
  bool onHeadersComplete(Http1Head& head) override {
    method_.assign(head.method);
    path_.assign(head.target.substr(0, head.target.find('?')));
    return true;
  }
  void onBody(std::string_view) override {}
  bool onMessageComplete() override {
    respond(server_.handler_(method_, path_, peer_));
    return true;
  }

  void respond(const AdminResponse& r) {
    if (answered_) return;
    answered_ = true;
    HeaderList headers;
    headers.add("content-type", r.content_type);
    headers.add("cache-control", "no-store");
    encodeResponseHead(out_, r.status, headers, BodyFraming::kContentLength, r.body.size(), true,
                       false);
    if (method_ != "HEAD") out_.append(r.body);
    scheduleWrite();
  }

  static void onTimeout(void* arg) { static_cast<AdminConnection*>(arg)->finish(); }

  AdminServer& server_;
  const sockaddr_storage peer_;
  Http1Parser parser_;
  Timer timer_;
  size_t parsed_ = 0;
  std::string method_;
  std::string path_;
  bool answered_ = false;
  bool done_ = false;
};

AdminServer::AdminServer(EventLoop& loop, Handler handler)
    : loop_(loop),
      handler_(std::move(handler)),
      resume_(loop.timers(), &AdminServer::onAcceptResume, this) {}

AdminServer::~AdminServer() {
  close();
  while (AdminConnection* c = connections_.front())
    c->finish();
}

bool AdminServer::listen(const ResolvedAddress& address, std::string* error) {
  fd_ = openListener(address, false, 128, error);
  if (fd_ < 0) return false;
  port_ = boundPort(fd_);
  accept_event_ = event_new(loop_.base(), fd_, EV_READ | EV_PERSIST, &AdminServer::onAccept, this);
  event_add(accept_event_, nullptr);
  return true;
}

void AdminServer::close() {
  resume_.cancel();
  if (accept_event_) {
    event_free(accept_event_);
    accept_event_ = nullptr;
  }
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

void AdminServer::onAccept(int, short, void* arg) {
  auto* self = static_cast<AdminServer*>(arg);
  for (int i = 0; i < 16; ++i) {
    sockaddr_storage peer{};
    socklen_t len = sizeof(peer);
    const int fd = ::accept4(self->fd_, reinterpret_cast<sockaddr*>(&peer), &len,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE) {
        event_del(self->accept_event_);
        self->resume_.arm(std::chrono::milliseconds(100));
      }
      return;
    }
    auto* c = new AdminConnection(*self, fd, peer);
    self->connections_.pushBack(*c);
    c->start();
  }
}

void AdminServer::onAcceptResume(void* arg) {
  auto* self = static_cast<AdminServer*>(arg);
  if (self->accept_event_) event_add(self->accept_event_, nullptr);
}

void AdminServer::connectionDone(AdminConnection& c) {
  static_cast<ListHook<>&>(c).leaveList();
  loop_.deferDelete(std::unique_ptr<Deletable>(&c));
}

}  // namespace viscount
