#include "proxy/server/server.h"

#include <event2/event.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

#include "config/config_loader.h"
#include "proxy/net/socket.h"
#include "proxy/server/descriptor_limit.h"
#include "telemetry/access_log.h"
#include "telemetry/event_log.h"
#include "telemetry/metrics.h"

namespace viscount {
namespace {
// After drain_timeout, how long the 503 `draining` answers get to reach their clients.
constexpr std::chrono::milliseconds kDrainGrace{250};
// How long the config file must be left alone after a change before it is read.
constexpr std::chrono::milliseconds kConfigSettle{100};
}  // namespace

Server::Server(ConfigPtr config, ServerOptions options)
    : options_(std::move(options)),
      config_(std::move(config)),
      drain_timer_(loop_.timers(), &Server::onDrainTimeout, this) {
  events_ =
      EventLog::create(config_->logging.format, config_->logging.level, options_.event_log_fd);
}

Server::~Server() {
  // Also after a start that failed half-way; first, while the open listeners keep the inodes
  // the check compares from being reused.
  removeUnixSockets();
  for (auto& w : workers_) {
    w->shutdown();
    w->join();
  }
  workers_.clear();
  for (event* ev : signal_events_)
    event_free(ev);
  admin_.reset();
  if (access_log_) access_log_->stop();
  if (events_) events_->flush();
}

ConfigPtr Server::currentConfig() const {
  std::lock_guard<std::mutex> lock(config_mutex_);
  return config_;
}

ConfigRuntimePtr Server::prepareConfig(const ConfigPtr& config, std::string* error) {
  auto runtime = std::make_shared<ConfigRuntime>();
  runtime->config = config;
  runtime->context_filter = ContextFilter::create(config->context, error);
  if (!runtime->context_filter) return nullptr;
  for (const ListenerConfig& l : config->listeners) {
    std::shared_ptr<const TlsServerContext> tls;
    if (l.tls) {
      std::string why;
      tls = TlsServerContext::create(*l.tls, l.http2, &why);
      if (!tls) {
        *error = "listener " + l.name + ": " + why;
        return nullptr;
      }
    }
    runtime->listener_tls.push_back(std::move(tls));
  }
  for (const UpstreamConfig& u : config->upstreams) {
    if (u.url.scheme != UpstreamScheme::kHttps) continue;
    std::string why;
    auto tls = TlsClientContext::create(u, &why);
    if (!tls) {
      *error = "upstream " + u.name + ": " + why;
      return nullptr;
    }
    runtime->upstream_tls[u.name] = std::move(tls);
  }
  for (const UpstreamConfig& u : config->upstreams) {
    std::string err;
    std::vector<ResolvedAddress> addresses;
    if (u.url.isUnix()) {
      // The socket need not exist yet: until the app creates it, connects fail as to a down host.
      addresses.emplace_back();
      makeUnixAddress(u.url.unix_path, &addresses.back());
    } else {
      addresses = resolveHost(u.url.host, u.url.port, &err);
    }
    if (addresses.empty()) {
      // Not fatal: requests get 502 until a reload resolves it, as with an upstream that is down.
      events_->log(LogLevel::kError, "upstream_unresolved",
                   {{"upstream", std::string_view(u.name)}, {"reason", std::string_view(err)}});
    }
    runtime->upstream_addresses[u.name] = std::move(addresses);

    UpstreamSharedLimits& shared = shared_limits_[u.name];
    if (!shared.requests) {
      std::vector<EventLoop*> loops;
      for (auto& w : workers_)
        loops.push_back(&w->loop());
      shared.requests = std::make_shared<SharedLimit>(loops);
      shared.connections = std::make_shared<SharedLimit>(loops);
    }
    shared.requests->setCapacity(u.limits.max_concurrent_requests);
    shared.connections->setCapacity(uint64_t{u.pool.size} + u.pool.max_overflow);
    runtime->upstream_limits[u.name] = shared;
  }
  // Tunnels of a listener count over all workers and across reloads, like requests in flight.
  for (const ListenerConfig& l : config->listeners) {
    std::shared_ptr<SharedLimit>& tunnels = tunnel_limits_[l.name];
    if (!tunnels) {
      std::vector<EventLoop*> loops;
      for (auto& w : workers_)
        loops.push_back(&w->loop());
      tunnels = std::make_shared<SharedLimit>(loops);
    }
    tunnels->setCapacity(l.limits.max_tunnels);
    runtime->listener_tunnels.push_back(tunnels);
  }
  return runtime;
}

std::vector<std::string> Server::unsupportedSettings(const Config&) {
  // Every scheme the config accepts is served: http:// (HTTP/1.1), h2c:// (HTTP/2 with prior
  // knowledge) and https:// (HTTP/2 or HTTP/1.1, as ALPN agrees).
  return {};
}

bool Server::start(std::string* error) {
  const Config& config = *config_;
  if (auto unsupported = unsupportedSettings(config); !unsupported.empty()) {
    *error = unsupported.front();
    return false;
  }
  LoggingConfig logging = config.logging;
  if (!options_.access_log_override.empty()) logging.access_log = options_.access_log_override;
  raiseDescriptorLimit(config, *events_);
  const size_t workers = config.effectiveWorkers();
  access_log_ = AccessLog::open(logging, workers, error);
  if (!access_log_) return false;
  // One shard per worker, and one for the main thread (the admin listener's refusals).
  metrics_ = std::make_unique<Metrics>(workers + 1);
  metrics_->setAccessLogDroppedSource([log = access_log_.get()] { return log->droppedLines(); });
  metrics_->setAccessLogSampledOutSource(
      [log = access_log_.get()] { return log->sampledOutLines(); });

  for (size_t i = 0; i < config.listeners.size(); ++i) {
    listener_connections_.push_back(std::make_unique<std::atomic<int64_t>>(0));
  }
  WorkerServices services;
  services.access_log = access_log_.get();
  services.metrics = metrics_.get();
  services.events = events_.get();
  services.listener_connections = &listener_connections_;
  for (size_t i = 0; i < workers; ++i) {
    workers_.push_back(std::make_unique<Worker>(i, services));
    if (config.io_uring) workers_.back()->loop().useBatchedSends();
  }
  // The workers' loops exist now; the shared limits post to them.
  const ConfigRuntimePtr runtime = prepareConfig(config_, error);
  if (!runtime) return false;
  for (auto& w : workers_)
    w->installConfig(runtime);

  // One listening socket per worker and listener. With port 0 the first socket picks the port
  // and the others join it.
  for (size_t li = 0; li < config.listeners.size(); ++li) {
    const ListenerConfig& l = config.listeners[li];
    if (l.address.isUnix()) {
      if (!bindUnixListener(li, error)) return false;
      continue;
    }
    ResolvedAddress address;
    if (!makeSocketAddress(l.address.host, l.address.port, &address)) {
      *error = "listener " + l.name + ": bad address " + l.address.text();
      return false;
    }
    uint16_t port = l.address.port;
    for (size_t wi = 0; wi < workers; ++wi) {
      makeSocketAddress(l.address.host, port, &address);
      std::string err;
      const int fd = openListener(address, true, 4096, &err);
      if (fd < 0) {
        *error = "listener " + l.name + ": " + err;
        return false;
      }
      if (wi == 0) port = boundPort(fd);
      workers_[wi]->addListener(fd, li);
    }
    listener_ports_.push_back(port);
    makeSocketAddress(l.address.host, port, &address);
    events_->log(LogLevel::kInfo, "listener_bound",
                 {{"listener", std::string_view(l.name)},
                  {"address", std::string_view(address.text())},
                  {"upstream", std::string_view(l.upstream)},
                  {"port", static_cast<uint64_t>(port)}});
  }

  if (config.admin.address) {
    admin_ = std::make_unique<AdminServer>(
        loop_, [this](std::string_view m, std::string_view p, const sockaddr_storage& peer) {
          return handleAdmin(m, p, peer);
        });
    ResolvedAddress address;
    if (!makeSocketAddress(config.admin.address->host, config.admin.address->port, &address)) {
      *error = "admin: bad address " + config.admin.address->text();
      return false;
    }
    std::string err;
    if (!admin_->listen(address, &err)) {
      *error = "admin: " + err;
      return false;
    }
    makeSocketAddress(config.admin.address->host, admin_->port(), &address);
    events_->log(LogLevel::kInfo, "admin_bound",
                 {{"address", std::string_view(address.text())},
                  {"port", static_cast<uint64_t>(admin_->port())}});
  }

  if (options_.handle_signals) {
    std::signal(SIGPIPE, SIG_IGN);
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGUSR1}) {
      event* ev = evsignal_new(loop_.base(), sig, &Server::onSignal, this);
      event_add(ev, nullptr);
      signal_events_.push_back(ev);
    }
  }

  if (config.watch_config && !config.source_path.empty()) watchConfigFile(config.source_path);

  for (auto& w : workers_)
    w->start();
  ready_ = true;
  const bool batched = !workers_.empty() && workers_.front()->loop().batchedSends();
  events_->log(LogLevel::kInfo, "started",
               {{"workers", static_cast<uint64_t>(workers)},
                {"io_uring", batched},
                {"version", std::string_view(VISCOUNT_VERSION)},
                {"config", std::string_view(config.source_path)}});
  return true;
}

bool Server::bindUnixListener(size_t index, std::string* error) {
  const ListenerConfig& l = config_->listeners[index];
  // A path cannot be bound twice, even with SO_REUSEPORT: the workers share one socket, each
  // through its own descriptor so that each closes its own at drain.
  UnixSocketFile file;
  std::string err;
  const int fd = openUnixListener(l.address.unix_path, l.socket_mode, 4096, &file, &err);
  if (fd < 0) {
    *error = "listener " + l.name + ": " + err;
    return false;
  }
  unix_sockets_.push_back(file);
  for (size_t wi = 0; wi < workers_.size(); ++wi) {
    const int worker_fd = wi == 0 ? fd : fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (worker_fd < 0) {
      *error = "listener " + l.name + ": dup: " + std::strerror(errno);
      return false;
    }
    workers_[wi]->addListener(worker_fd, index);
  }
  listener_ports_.push_back(0);
  events_->log(LogLevel::kInfo, "listener_bound",
               {{"listener", std::string_view(l.name)},
                {"address", std::string_view(l.address.text())},
                {"upstream", std::string_view(l.upstream)}});
  return true;
}

// Called while this process still holds the sockets open: their inodes cannot be reused by
// another file at the path meanwhile, so a matching inode is our file.
void Server::removeUnixSockets() {
  for (const UnixSocketFile& file : unix_sockets_)
    removeUnixSocketFile(file);
  unix_sockets_.clear();
}

int Server::run() {
  loop_.run();
  return exit_code_;
}

void Server::requestDrain() {
  loop_.post([this] { startDrain("requested"); });
}

void Server::requestReload() {
  loop_.post([this] { reload(); });
}

void Server::requestStop() {
  loop_.post([this] { finish(); });
}

void Server::onSignal(int sig, short, void* arg) {
  auto* self = static_cast<Server*>(arg);
  if (sig == SIGHUP) {
    self->reload();
  } else if (sig == SIGUSR1) {
    self->reopenLogs();
  } else if (self->draining_) {
    self->events_->log(LogLevel::kWarn, "shutdown_forced", {{"signal", static_cast<int64_t>(sig)}});
    self->finish();  // a second SIGTERM: stop now
  } else {
    self->startDrain(sig == SIGTERM ? "SIGTERM" : "SIGINT");
  }
}

void Server::reopenLogs() {
  // The writer thread keeps writing meanwhile: the new file takes the old one's descriptor number
  // in one dup3, so each write lands whole in one file or the other and none is lost.
  std::string error;
  if (!access_log_ || !access_log_->reopen(&error)) {
    events_->log(LogLevel::kError, "access_log_reopen_failed",
                 {{"error", std::string_view(error)}});
    return;
  }
  events_->log(LogLevel::kInfo, "access_log_reopened");
}

void Server::startDrain(std::string_view reason) {
  if (draining_ || finished_) return;
  draining_ = true;
  ready_ = false;
  const Duration timeout = currentConfig()->drain_timeout;
  events_->log(LogLevel::kInfo, "drain_started",
               {{"reason", reason}, {"drain_timeout_ms", static_cast<int64_t>(timeout.count())}});
  // Nothing accepts on it any more: a new client should find no socket rather than wait in a
  // backlog nobody reads.
  removeUnixSockets();
  workers_draining_ = workers_.size();
  for (auto& w : workers_) {
    w->beginDrain([this] {
      loop_.post([this] {
        if (workers_draining_ > 0 && --workers_draining_ == 0) {
          events_->log(LogLevel::kInfo, "drain_complete");
          finish();
        }
      });
    });
  }
  drain_timer_.arm(timeout);
}

void Server::onDrainTimeout(void* arg) {
  auto* self = static_cast<Server*>(arg);
  if (self->drain_expired_) {
    self->finish();  // the grace period for the last answers is over
    return;
  }
  self->drain_expired_ = true;
  size_t open = 0;
  for (auto& w : self->workers_)
    open += w->connectionCount();
  self->events_->log(LogLevel::kWarn, "drain_timeout",
                     {{"open_connections", static_cast<uint64_t>(open)}});
  // Requests still in flight get a 503 they can retry elsewhere rather than a reset; the
  // workers report drained when their connections are gone, else the grace period ends it.
  for (auto& w : self->workers_)
    w->abandonInFlight();
  self->drain_timer_.arm(kDrainGrace);
}

void Server::finish() {
  if (finished_) return;
  finished_ = true;
  ready_ = false;
  drain_timer_.cancel();
  if (admin_) admin_->close();
  removeUnixSockets();
  for (auto& w : workers_)
    w->shutdown();
  for (auto& w : workers_)
    w->join();
  if (access_log_) access_log_->stop();
  events_->log(LogLevel::kInfo, "stopped");
  events_->flush();
  loop_.stop();
}

void Server::watchConfigFile(const std::string& path) {
  auto watcher = std::make_unique<ConfigWatcher>(loop_, path, kConfigSettle, [this, path] {
    if (draining_ || !currentConfig()->watch_config) return;
    events_->log(LogLevel::kInfo, "config_changed", {{"config", std::string_view(path)}});
    reload();
  });
  std::string error;
  if (!watcher->start(&error)) {
    // Not fatal: SIGHUP still reloads.
    events_->log(LogLevel::kWarn, "config_watch_failed", {{"error", std::string_view(error)}});
    return;
  }
  for (const std::string& dir : watcher->watchedDirectories()) {
    events_->log(LogLevel::kDebug, "config_watch", {{"directory", std::string_view(dir)}});
  }
  config_watcher_ = std::move(watcher);
}

void Server::reload() {
  const ConfigPtr current = currentConfig();
  if (current->source_path.empty()) {
    events_->log(LogLevel::kWarn, "reload_ignored",
                 {{"reason", "no config file (zero-config mode)"}});
    return;
  }
  ConfigLoadResult result = loadConfigFile(current->source_path);
  if (!result.ok()) {
    for (const ConfigError& e : result.errors) {
      events_->log(LogLevel::kError, "reload_rejected", {{"error", std::string_view(e.format())}});
    }
    return;
  }
  const Config& next = *result.config;
  bool listeners_same = next.listeners.size() == current->listeners.size() &&
                        next.effectiveWorkers() == current->effectiveWorkers() &&
                        next.io_uring == current->io_uring;
  for (size_t i = 0; listeners_same && i < next.listeners.size(); ++i) {
    listeners_same = next.listeners[i].address.text() == current->listeners[i].address.text() &&
                     next.listeners[i].socket_mode == current->listeners[i].socket_mode;
  }
  if (!listeners_same) {
    events_->log(LogLevel::kError, "reload_rejected",
                 {{"error",
                   "listener addresses and socket modes, worker count and io_uring "
                   "need a restart"}});
    return;
  }
  std::string error;
  const ConfigRuntimePtr runtime = prepareConfig(result.config, &error);
  if (!runtime) {
    events_->log(LogLevel::kError, "reload_rejected", {{"error", std::string_view(error)}});
    return;
  }
  {
    std::lock_guard<std::mutex> lock(config_mutex_);
    config_ = result.config;
  }
  for (auto& w : workers_)
    w->installConfig(runtime);
  events_->setLevel(next.logging.level);
  if (next.watch_config && !config_watcher_) watchConfigFile(next.source_path);
  ++reloads_;
  events_->log(LogLevel::kInfo, "config_reloaded",
               {{"config", std::string_view(next.source_path)}});
}

AdminResponse Server::handleAdmin(std::string_view method, std::string_view path,
                                  const sockaddr_storage& peer) {
  AdminResponse r;
  const bool get = method == "GET" || method == "HEAD";
  // The probes and the scrape answer whoever reaches the address (the kubelet, Prometheus);
  // everything else changes or reveals state, and answers admin.control_from only. Unknown paths
  // too, so that a new endpoint is closed until it is listed here.
  const bool open_to_all = path == "/healthz" || path == "/ready" || path == "/metrics";
  if (!open_to_all) {
    bool allowed = false;
    for (const Cidr& cidr : currentConfig()->admin.control_from) {
      if (cidr.contains(peer)) {
        allowed = true;
        break;
      }
    }
    if (!allowed) {
      metrics_->shard(workers_.size()).rejected("admin_forbidden");
      const std::string from = formatPeer(reinterpret_cast<const sockaddr*>(&peer));
      events_->log(LogLevel::kWarn, "admin_forbidden",
                   {{"method", method}, {"path", path}, {"peer", std::string_view(from)}});
      r.status = 403;
      r.content_type = "application/json";
      r.body =
          "{\"error\":\"admin_forbidden\",\"message\":\"this admin endpoint answers only "
          "admin.control_from\"}\n";
      return r;
    }
  }
  if (path == "/healthz" && get) {
    r.body = "ok\n";
  } else if (path == "/ready" && get) {
    if (ready_.load() && !draining_) {
      r.body = "ready\n";
    } else {
      r.status = 503;
      r.body = draining_ ? "draining\n" : "not ready\n";
    }
  } else if (path == "/metrics" && get) {
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = metrics_->renderPrometheus();
  } else if (path == "/config" && get) {
    r.content_type = "application/json";
    r.body = toJsonText(*currentConfig());
  } else if (path == "/drain" && method == "POST") {
    startDrain("admin");
    r.status = 202;
    r.content_type = "application/json";
    r.body = "{\"status\":\"draining\"}\n";
  } else if (path == "/healthz" || path == "/ready" || path == "/metrics" || path == "/config" ||
             path == "/drain") {
    r.status = 405;
    r.body = "method not allowed\n";
  } else {
    r.status = 404;
    r.body = "not found\n";
  }
  return r;
}

}  // namespace viscount
