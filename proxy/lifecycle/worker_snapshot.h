#pragma once

// What one worker derives from one config snapshot: compiled filters and, per upstream, the
// pool. A request holds the snapshot it started with (shared_ptr), so a reload changes what new
// requests see while in-flight ones finish on the old pools.

#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "filters/context_filter.h"
#include "filters/request_limiter.h"
#include "pool/shared_limit.h"
#include "pool/upstream_pool.h"
#include "proxy/net/socket.h"
#include "proxy/net/tls.h"

namespace viscount {

class UpstreamMetrics;

struct UpstreamRuntime {
  const UpstreamConfig* config = nullptr;
  std::string authority;  // config->url.authority(), kept for requests without a Host
  std::unique_ptr<RequestLimiter> limiter;
  std::unique_ptr<UpstreamPool> pool;
  // Where this upstream's requests get their streams: `pool`, or a unit test's fake.
  UpstreamSource* source = nullptr;
  UpstreamMetrics* metrics = nullptr;
};

struct ListenerRuntime {
  const ListenerConfig* config = nullptr;
  UpstreamRuntime* upstream = nullptr;
  std::shared_ptr<const TlsServerContext> tls;  // null: cleartext
  // limits.max_tunnels, shared by every worker; null (a unit test): no limit.
  std::shared_ptr<SharedLimit> tunnels;
};

struct WorkerSnapshot {
  ConfigPtr config;
  std::shared_ptr<const ContextFilter> context_filter;  // one per config, shared by workers
  std::vector<std::unique_ptr<UpstreamRuntime>> upstreams;
  std::vector<ListenerRuntime> listeners;  // same order as config->listeners

  ~WorkerSnapshot() {
    // Pools first: their connections reference nothing else here.
    for (auto& u : upstreams) {
      u->pool.reset();
      u->limiter.reset();
    }
  }
};

using WorkerSnapshotPtr = std::shared_ptr<WorkerSnapshot>;

// Facts about the client connection a request arrived on, kept by the connection for its whole
// life (so: compact). Whether it is TLS, and its session, the connection itself says.
struct PeerInfo {
  PeerAddress address;
  bool trusted = false;  // the address is in context.trusted_sources
};

}  // namespace viscount
