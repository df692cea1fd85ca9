#include "proxy/server/worker.h"

#include <event2/event.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "proxy/http1/http1_client.h"
#include "proxy/http2/http2_client.h"
#include "proxy/http2/http2_server.h"
#include "telemetry/access_log.h"
#include "telemetry/event_log.h"
#include "telemetry/metrics.h"

namespace viscount {

Worker::Worker(size_t index, WorkerServices services)
    : index_(index),
      services_(services),
      log_retry_(loop_.timers(), &Worker::onLogRetry, this),
      access_log_(&services_.access_log->shard(index)),
      metrics_(&services_.metrics->shard(index)),
      connection_services_(ExchangeServices{.loop = loop_,
                                            .ids = ids_,
                                            .request_buffers = request_buffers_,
                                            .access_log = *access_log_,
                                            .metrics = *metrics_,
                                            .events = *services_.events},
                           *this) {
  // Everything a turn logged goes to the writer in one hand-off. If the writer is behind, the
  // batch stays with us and a short timer retries even when no new request arrives.
  loop_.addEndOfTurnHook([this] {
    if (!access_log_->flush() && !log_retry_.armed()) log_retry_.arm(kLogRetry);
  });
}

void Worker::onLogRetry(void* arg) {
  auto* self = static_cast<Worker*>(arg);
  if (!self->access_log_->flush()) self->log_retry_.arm(kLogRetry);
}

Worker::~Worker() {
  if (thread_.joinable()) {
    loop_.stop();
    thread_.join();
  }
  for (auto& l : listeners_) {
    if (l->accept_event) event_free(l->accept_event);
    if (l->fd >= 0) ::close(l->fd);
  }
}

void Worker::start() {
  thread_ = std::thread([this] { run(); });
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::run() {
  loop_.run();
  // Stopped: nothing may outlive the loop that its callbacks reference.
  while (ClientConnection* c = connections_.front()) {
    c->abort();
    if (connections_.front() == c) static_cast<ListHook<ConnectionListTag>&>(*c).leaveList();
  }
  closeListeners();
  loop_.runDeferred();
  connection_services_.setSnapshot(nullptr);
  loop_.runDeferred();
  // The last lines must reach the writer before it stops; it may need a moment to make room.
  for (int i = 0; i < 2000 && !access_log_->flush(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

void Worker::installConfig(ConfigRuntimePtr runtime) {
  loop_.post([this, runtime = std::move(runtime)] { buildSnapshot(*runtime); });
}

void Worker::buildSnapshot(const ConfigRuntime& runtime) {
  const ConfigPtr& config = runtime.config;
  auto snap = std::make_shared<WorkerSnapshot>();
  snap->config = config;
  snap->context_filter = runtime.context_filter;
  for (const UpstreamConfig& u : config->upstreams) {
    auto rt = std::make_unique<UpstreamRuntime>();
    rt->config = &u;
    rt->authority = u.url.authority();
    rt->metrics = &metrics_->upstream(u.name);
    std::vector<ResolvedAddress> addresses;
    if (auto it = runtime.upstream_addresses.find(u.name); it != runtime.upstream_addresses.end()) {
      addresses = it->second;
    }
    // The pool asks once a connection's transport is up: by the scheme, and for https:// by
    // what ALPN agreed on. An HTTP/2 connection never carries more streams than the upstream
    // may have requests in flight.
    UpstreamPool::Factory factory =
        [limits = u.limits](UpstreamConnection& connection,
                            UpstreamProtocol protocol) -> std::unique_ptr<UpstreamCodec> {
      if (protocol == UpstreamProtocol::kHttp2) {
        return std::make_unique<Http2ClientCodec>(connection, limits.max_concurrent_requests,
                                                  limits.max_informational_responses,
                                                  limits.max_response_headers_count);
      }
      return std::make_unique<Http1ClientCodec>(connection, limits.max_informational_responses,
                                                limits.max_response_headers_count);
    };
    const UpstreamSharedLimits& shared = runtime.upstream_limits.at(u.name);
    rt->limiter = std::make_unique<RequestLimiter>(loop_, shared.requests, index_, u.limits,
                                                   metrics_, rt->metrics);
    rt->pool = std::make_unique<UpstreamPool>(loop_, u, std::move(addresses), std::move(factory),
                                              shared.connections, index_, metrics_, rt->metrics);
    if (auto it = runtime.upstream_tls.find(u.name); it != runtime.upstream_tls.end()) {
      rt->pool->setTls(it->second);
    }
    rt->source = rt->pool.get();
    snap->upstreams.push_back(std::move(rt));
  }
  for (size_t i = 0; i < config->listeners.size(); ++i) {
    const ListenerConfig& l = config->listeners[i];
    ListenerRuntime lr;
    lr.config = &l;
    lr.tls = runtime.listener_tls.at(i);
    if (i < runtime.listener_tunnels.size()) lr.tunnels = runtime.listener_tunnels[i];
    for (auto& u : snap->upstreams) {
      if (u->config->name == l.upstream) lr.upstream = u.get();
    }
    snap->listeners.push_back(lr);
  }
  connection_services_.setSnapshot(std::move(snap));
}

void Worker::addListener(int fd, size_t listener_index) {
  loop_.post([this, fd, listener_index] {
    auto l = std::make_unique<Listener>(this, loop_.timers());
    l->fd = fd;
    l->index = listener_index;
    if (draining()) {
      ::close(fd);
      return;
    }
    l->accept_event = event_new(loop_.base(), fd, EV_READ | EV_PERSIST, &Worker::onAccept, l.get());
    event_add(l->accept_event, nullptr);
    listeners_.push_back(std::move(l));
  });
}

void Worker::onAccept(int, short, void* arg) {
  auto* l = static_cast<Listener*>(arg);
  l->worker->acceptConnections(*l);
}

void Worker::acceptConnections(Listener& listener) {
  // Bounded per wakeup so one busy listener cannot starve established connections.
  for (int i = 0; i < 64; ++i) {
    sockaddr_storage peer{};
    socklen_t len = sizeof(peer);
    const int fd = ::accept4(listener.fd, reinterpret_cast<sockaddr*>(&peer), &len,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE) pauseAccepting(listener, errno);
      return;
    }
    listener.backoff = std::chrono::milliseconds(0);
    serveConnection(fd, listener.index, reinterpret_cast<const sockaddr*>(&peer));
  }
}

void Worker::pauseAccepting(Listener& listener, int err) {
  listener.backoff = listener.backoff.count() == 0
                         ? kFirstAcceptBackoff
                         : std::min(listener.backoff * 2, kMaxAcceptBackoff);
  metrics_->rejected("fd_limit");
  // Once a second at most, over all workers: the line says how many were held back.
  services_.events->logRepeating(
      LogLevel::kError, "accept_failed", 1,
      {{"reason", std::string_view(std::strerror(err))},
       {"listener", std::string_view(snapshot()->listeners[listener.index].config->name)},
       {"retry_in_ms", static_cast<int64_t>(listener.backoff.count())}});
  event_del(listener.accept_event);
  listener.resume.arm(listener.backoff);
}

void Worker::onAcceptResume(void* arg) {
  auto* l = static_cast<Listener*>(arg);
  if (l->accept_event == nullptr) return;  // closed by a drain meanwhile
  event_add(l->accept_event, nullptr);
  l->worker->acceptConnections(*l);
}

void Worker::serveConnection(int fd, size_t listener_index, const sockaddr* peer) {
  const ListenerRuntime& lr = snapshot()->listeners[listener_index];
  auto& open = *(*services_.listener_connections)[listener_index];
  if (open.fetch_add(1, std::memory_order_relaxed) >=
      static_cast<int64_t>(lr.config->limits.max_connections)) {
    open.fetch_sub(1, std::memory_order_relaxed);
    ::close(fd);
    metrics_->rejected("max_connections");
    return;
  }
  PeerInfo info;
  info.address = PeerAddress(peer);
  if (peer->sa_family == AF_UNIX) {
    // No Nagle on a Unix socket, and no address to match: trusted only when listed as "unix".
    info.trusted = snapshot()->config->context.trust_unix_clients;
  } else {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    for (const Cidr& cidr : snapshot()->config->context.trusted_sources) {
      if (cidr.contains(peer)) {
        info.trusted = true;
        break;
      }
    }
  }
  std::unique_ptr<TlsSession> tls;
  if (lr.tls) {
    tls = lr.tls->newSession(fd);
    if (!tls) {
      ::close(fd);
      open.fetch_sub(1, std::memory_order_relaxed);
      metrics_->rejected("tls_setup");
      return;
    }
  }
  auto* connection =
      new Http1ServerConnection(connection_services_, http1_readers_, fd, listener_index, info);
  if (tls) connection->useTls(std::move(tls));
  connections_.pushBack(*connection);
  connection_count_.fetch_add(1, std::memory_order_relaxed);
  metrics_->downstreamConnectionOpened(lr.config->name);
  connection->start();
}

void Worker::continueAsHttp2(ClientConnection& old, int fd, const PeerInfo& peer,
                             std::unique_ptr<TlsSession> tls, std::string_view received) {
  // Same client, same counts: the HTTP/2 connection takes the old one's place in the list.
  auto* h2 = new Http2ServerConnection(connection_services_, fd, old.listenerIndex(), peer,
                                       std::move(tls));
  static_cast<ListHook<ConnectionListTag>&>(old).leaveList();
  connections_.pushBack(*h2);
  loop_.deferDelete(std::unique_ptr<Deletable>(&old));
  h2->start(received);
}

void Worker::connectionClosed(ClientConnection& connection) {
  static_cast<ListHook<ConnectionListTag>&>(connection).leaveList();
  connection_count_.fetch_sub(1, std::memory_order_relaxed);
  const size_t index = connection.listenerIndex();
  (*services_.listener_connections)[index]->fetch_sub(1, std::memory_order_relaxed);
  if (snapshot() && index < snapshot()->listeners.size()) {
    metrics_->downstreamConnectionClosed(snapshot()->listeners[index].config->name);
  }
  loop_.deferDelete(std::unique_ptr<Deletable>(&connection));
  checkDrained();
}

void Worker::closeListeners() {
  for (auto& l : listeners_) {
    l->resume.cancel();
    if (l->accept_event) {
      event_free(l->accept_event);
      l->accept_event = nullptr;
    }
    if (l->fd >= 0) {
      ::close(l->fd);
      l->fd = -1;
    }
  }
}

void Worker::beginDrain(std::function<void()> done) {
  loop_.post([this, done = std::move(done)]() mutable {
    connection_services_.setDraining();
    drained_ = std::move(done);
    closeListeners();
    std::vector<ClientConnection*> all;
    for (auto* c = connections_.front(); c; c = connections_.next(*c))
      all.push_back(c);
    for (auto* c : all)
      c->drain();
    if (snapshot()) {
      for (auto& u : snapshot()->upstreams)
        u->pool->closeIdle();
    }
    checkDrained();
  });
}

void Worker::checkDrained() {
  if (draining() && connections_.empty() && drained_) {
    auto done = std::move(drained_);
    drained_ = nullptr;
    done();
  }
}

void Worker::abandonInFlight() {
  loop_.post([this] {
    std::vector<ClientConnection*> all;
    for (auto* c = connections_.front(); c; c = connections_.next(*c))
      all.push_back(c);
    for (auto* c : all)
      c->abandon();
  });
}

void Worker::shutdown() {
  loop_.post([this] {
    std::vector<ClientConnection*> all;
    for (auto* c = connections_.front(); c; c = connections_.next(*c))
      all.push_back(c);
    for (auto* c : all)
      c->abort();
    closeListeners();
    loop_.stop();
  });
}

}  // namespace viscount
