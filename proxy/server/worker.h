#pragma once

// A worker thread: one event loop owning its listening sockets (SO_REUSEPORT), its client
// connections, its upstream pools, its id generator and its metric and access-log shards. The
// main thread talks to it only by posting to its loop.

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "filters/id_generator.h"
#include "proxy/http1/http1_server.h"
#include "proxy/lifecycle/request_buffers.h"
#include "proxy/lifecycle/services.h"
#include "proxy/lifecycle/worker_snapshot.h"
#include "proxy/net/event_loop.h"
#include "proxy/net/intrusive_list.h"
#include "proxy/net/socket.h"

struct event;

namespace viscount {

class AccessLog;
class AccessLogShard;
class EventLog;
class Metrics;
class MetricsShard;

// Process-wide objects every worker uses through its own shard.
struct WorkerServices {
  AccessLog* access_log = nullptr;
  Metrics* metrics = nullptr;
  EventLog* events = nullptr;
  // Open client connections per listener, across workers (max_connections).
  std::vector<std::unique_ptr<std::atomic<int64_t>>>* listener_connections = nullptr;
};

// The limits of one upstream that hold across workers, and across reloads (the server keeps
// them by upstream name, so requests in flight on an old config count against the new one).
struct UpstreamSharedLimits {
  std::shared_ptr<SharedLimit> requests;     // limits.max_concurrent_requests
  std::shared_ptr<SharedLimit> connections;  // pool.size + pool.max_overflow
};

// What the main thread derives once from one config, shared read-only by every worker: resolved
// upstream addresses, shared limits and the compiled context filter.
struct ConfigRuntime {
  ConfigPtr config;
  std::map<std::string, std::vector<ResolvedAddress>> upstream_addresses;  // by upstream name
  std::map<std::string, UpstreamSharedLimits> upstream_limits;             // by upstream name
  std::shared_ptr<const ContextFilter> context_filter;
  // By listener index; null for a cleartext listener. Built from the files at each (re)load.
  std::vector<std::shared_ptr<const TlsServerContext>> listener_tls;
  // By listener index: limits.max_tunnels over all workers.
  std::vector<std::shared_ptr<SharedLimit>> listener_tunnels;
  std::map<std::string, std::shared_ptr<const TlsClientContext>> upstream_tls;  // https:// only
};
using ConfigRuntimePtr = std::shared_ptr<const ConfigRuntime>;

class Worker final : public ConnectionOwner {
 public:
  Worker(size_t index, WorkerServices services);
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  ~Worker() override;

  // --- main thread ---
  void start();
  void join();
  // Installs a config snapshot for new requests (runs on the worker thread).
  void installConfig(ConfigRuntimePtr runtime);
  // Hands a bound listening socket to this worker.
  void addListener(int fd, size_t listener_index);
  // Stops accepting, closes idle connections, lets in-flight requests finish; `done` runs on
  // the worker thread when the last connection is gone.
  void beginDrain(std::function<void()> done);
  // The drain timed out: every request still in flight is answered 503 `draining` (or cut, if
  // its response has started).
  void abandonInFlight();
  // Closes every connection now and stops the loop.
  void shutdown();
  size_t index() const { return index_; }
  size_t connectionCount() const { return connection_count_.load(std::memory_order_relaxed); }

  // --- worker thread ---
  // Connections and requests get what they use of the worker through connection_services_
  // (lifecycle/services.h), not through accessors here.
  EventLoop& loop() { return loop_; }
  const WorkerSnapshotPtr& snapshot() const { return connection_services_.snapshot(); }
  bool draining() const { return connection_services_.draining(); }
  // ConnectionOwner
  void connectionClosed(ClientConnection& connection) override;
  void continueAsHttp2(ClientConnection& old, int fd, const PeerInfo& peer,
                       std::unique_ptr<TlsSession> tls, std::string_view received) override;
  // Serves an accepted client socket on listener `listener_index` from `peer`: counted against
  // max_connections (closed when over), TLS when the listener has it, HTTP/1 first (the h2c
  // preface or ALPN h2 hands it over to HTTP/2). The accept loop calls it for every socket;
  // tests and fuzz targets hand it one end of a socketpair.
  void serveConnection(int fd, size_t listener_index, const sockaddr* peer);

 private:
  struct Listener {
    Listener(Worker* w, TimerQueue& timers)
        : worker(w), resume(timers, &Worker::onAcceptResume, this) {}
    Worker* worker = nullptr;
    int fd = -1;
    size_t index = 0;
    event* accept_event = nullptr;
    // Out of descriptors (EMFILE/ENFILE): the pending connection stays in the backlog and the
    // listener stays readable, so accepting again at once would spin. Accepting pauses for
    // `backoff`, doubled while it persists.
    Timer resume;
    std::chrono::milliseconds backoff{0};
  };

  void run();
  void buildSnapshot(const ConfigRuntime& runtime);
  void acceptConnections(Listener& listener);
  static void onAccept(int fd, short what, void* arg);
  static void onAcceptResume(void* arg);
  void pauseAccepting(Listener& listener, int err);
  static constexpr std::chrono::milliseconds kFirstAcceptBackoff{10};
  static constexpr std::chrono::milliseconds kMaxAcceptBackoff{1000};
  static void onLogRetry(void* arg);
  static constexpr std::chrono::milliseconds kLogRetry{10};
  void closeListeners();
  void checkDrained();

  size_t index_;
  WorkerServices services_;
  Http1ReaderPool http1_readers_;  // before loop_: connections it deletes may still hold one
  EventLoop loop_;
  IdGenerator ids_;
  RequestBuffers request_buffers_;
  Timer log_retry_;
  AccessLogShard* access_log_;
  MetricsShard* metrics_;
  ConnectionServices connection_services_;  // holds the current snapshot and the drain flag
  std::vector<std::unique_ptr<Listener>> listeners_;
  IntrusiveList<ClientConnection, ConnectionListTag> connections_;
  std::atomic<size_t> connection_count_{0};
  std::function<void()> drained_;
  std::thread thread_;
};

}  // namespace viscount
