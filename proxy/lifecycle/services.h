#pragma once

// What the lifecycle and the codecs get from the worker that runs them: named services, never the
// worker itself. An Exchange needs a loop for its timers and buffers, the id generator, the
// worker's request-buffer cache and its log and metric shards; a client connection needs those
// plus the current config snapshot, whether the worker drains, and someone to tell when it
// closes or hands its socket to HTTP/2. Narrow on purpose: a unit test builds these from real
// shards and a real loop (tests/proxy/lifecycle) and drives requests without a worker or a socket.

#include <memory>
#include <string_view>

#include "proxy/lifecycle/worker_snapshot.h"

namespace viscount {

class AccessLogShard;
class ClientConnection;
class EventLog;
class EventLoop;
class IdGenerator;
class MetricsShard;
class RequestBuffers;
class TlsSession;

struct ExchangeServices {
  EventLoop& loop;  // timers, body buffers, deferred deletion
  IdGenerator& ids;
  RequestBuffers& request_buffers;  // strings lent to each request, kept warm per worker
  AccessLogShard& access_log;
  MetricsShard& metrics;
  EventLog& events;
};

// The owner of client connections (the worker): told when one closes, and asked to continue one
// as HTTP/2 when its first bytes are the connection preface or ALPN chose h2. Codecs call it;
// only the owner knows both codecs.
class ConnectionOwner {
 public:
  virtual ~ConnectionOwner() = default;
  // The connection is finished; the owner deletes it (deferred).
  virtual void connectionClosed(ClientConnection& connection) = 0;
  // `old` gave up its socket `fd` (and TLS session): serve it as HTTP/2 from the bytes already
  // `received`. The owner deletes `old` (deferred).
  virtual void continueAsHttp2(ClientConnection& old, int fd, const PeerInfo& peer,
                               std::unique_ptr<TlsSession> tls, std::string_view received) = 0;
};

// Everything a client connection uses of its worker. The worker updates the snapshot on reload
// and sets draining; connections read both when they decide.
class ConnectionServices {
 public:
  ConnectionServices(ExchangeServices exchange, ConnectionOwner& owner)
      : exchange_(exchange), owner_(owner) {}
  ConnectionServices(const ConnectionServices&) = delete;
  ConnectionServices& operator=(const ConnectionServices&) = delete;

  ExchangeServices& exchange() { return exchange_; }
  EventLoop& loop() { return exchange_.loop; }
  MetricsShard& metrics() { return exchange_.metrics; }
  ConnectionOwner& owner() { return owner_; }
  // The snapshot new requests start with.
  const WorkerSnapshotPtr& snapshot() const { return snapshot_; }
  const ListenerConfig& listener(size_t index) const { return *snapshot_->listeners[index].config; }
  bool draining() const { return draining_; }

  // --- the owner's ---
  void setSnapshot(WorkerSnapshotPtr snapshot) { snapshot_ = std::move(snapshot); }
  void setDraining() { draining_ = true; }

 private:
  ExchangeServices exchange_;
  ConnectionOwner& owner_;
  WorkerSnapshotPtr snapshot_;
  bool draining_ = false;
};

}  // namespace viscount
