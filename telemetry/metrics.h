#pragma once

// Prometheus metrics, sharded per worker. Each worker updates only its own MetricsShard (no lock,
// no shared cache line on the request path); the admin thread renders /metrics by summing the
// shards. Registering a new labelled series (an upstream at config install, a rejection reason the
// first time it happens) takes a mutex that render also takes; counting never does.

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/http/grpc_status.h"
#include "proxy/http/request_context.h"
#include "telemetry/metric_cells.h"

namespace viscount {

// Slots for viscount_request_errors_total, indexed by ErrorCode. A code past the end is counted as
// internal_error, which is also what errorInfo() calls a code it does not know.
inline constexpr size_t kErrorCodeSlots = static_cast<size_t>(ErrorCode::kCount);

// One upstream's cells in one shard. Obtained once (e.g. at config install) with
// MetricsShard::upstream() and kept by the worker; the address is stable for the shard's life.
class UpstreamMetrics {
 public:
  UpstreamMetrics() = default;
  UpstreamMetrics(const UpstreamMetrics&) = delete;
  UpstreamMetrics& operator=(const UpstreamMetrics&) = delete;

 private:
  friend class MetricsShard;
  friend class Metrics;

  StatusCounters requests_;
  std::array<Counter, kErrorCodeSlots> errors_;
  std::array<Counter, kGrpcStatusCount> grpc_;  // by grpc-status; unknown codes as UNKNOWN
  Histogram duration_;
  Histogram upstream_duration_;
  LabelledCells<Gauge> connections_{"idle", "active", "connecting"};  // by state
  Gauge queue_depth_;
  Gauge in_flight_;
  Gauge pool_waiters_;
  Counter connect_failures_;
  Counter reused_;
  Counter retries_;
};

// Used only by its worker thread (or before the worker starts).
class MetricsShard {
 public:
  MetricsShard(const MetricsShard&) = delete;
  MetricsShard& operator=(const MetricsShard&) = delete;

  // Get-or-create; takes the registry mutex only to create.
  UpstreamMetrics& upstream(std::string_view name) { return upstreams_.get(name, registry_); }

  // viscount_requests_total{upstream,code}, viscount_request_duration_seconds{upstream},
  // viscount_upstream_request_duration_seconds{upstream} (when the upstream was reached),
  // viscount_request_errors_total{upstream,error} (when the request failed),
  // viscount_requests_by_protocol_total{protocol} and, over TLS,
  // viscount_tls_requests_total{tls_version,client_cert_verified} and, for a gRPC request with
  // a status, viscount_grpc_requests_total{upstream,grpc_code}.
  void requestCompleted(UpstreamMetrics& up, const RequestContext& ctx);

  // viscount_rejected_total{reason}
  void rejected(std::string_view reason) { rejected_.get(reason, registry_).add(); }
  // viscount_timeouts_total{kind}
  void timedOut(std::string_view kind) { timeouts_.get(kind, registry_).add(); }

  // viscount_downstream_connections{listener} and viscount_downstream_connections_total{listener}
  void downstreamConnectionOpened(std::string_view listener) {
    ListenerCells& cells = listeners_.get(listener, registry_);
    cells.open.add(1);
    cells.accepted.add();
  }
  void downstreamConnectionClosed(std::string_view listener) {
    listeners_.get(listener, registry_).open.add(-1);
  }

  // viscount_tunnels_active{listener}, viscount_tunnels_total{listener} and, when one ends,
  // viscount_tunnel_bytes_total{listener,direction} ("in": from the client, "out": to it).
  void tunnelOpened(std::string_view listener) {
    ListenerCells& cells = listeners_.get(listener, registry_);
    cells.tunnels.add(1);
    cells.tunnels_opened.add();
  }
  void tunnelClosed(std::string_view listener, uint64_t bytes_in, uint64_t bytes_out) {
    ListenerCells& cells = listeners_.get(listener, registry_);
    cells.tunnels.add(-1);
    cells.tunnel_bytes_in.add(bytes_in);
    cells.tunnel_bytes_out.add(bytes_out);
  }

  // viscount_upstream_connections{upstream,state}; states "idle", "active", "connecting".
  void upstreamConnections(UpstreamMetrics& up, std::string_view state, int64_t delta) {
    up.connections_.get(state, registry_).add(delta);
  }
  // viscount_upstream_queue_depth{upstream}
  void upstreamQueueDepth(UpstreamMetrics& up, int64_t delta) { up.queue_depth_.add(delta); }
  // viscount_upstream_requests_in_flight{upstream}
  void upstreamInFlight(UpstreamMetrics& up, int64_t delta) { up.in_flight_.add(delta); }
  // viscount_upstream_pool_waiters{upstream}
  void upstreamPoolWaiters(UpstreamMetrics& up, int64_t delta) { up.pool_waiters_.add(delta); }
  // viscount_upstream_connect_failures_total{upstream}
  void upstreamConnectFailed(UpstreamMetrics& up) { up.connect_failures_.add(); }
  // viscount_upstream_connections_reused_total{upstream}
  void upstreamConnectionReused(UpstreamMetrics& up) { up.reused_.add(); }
  // viscount_upstream_retries_total{upstream}
  void retried(UpstreamMetrics& up) { up.retries_.add(); }

 private:
  friend class Metrics;
  struct ListenerCells {
    Gauge open;
    Counter accepted;
    Gauge tunnels;
    Counter tunnels_opened;
    Counter tunnel_bytes_in;
    Counter tunnel_bytes_out;
  };

  explicit MetricsShard(std::mutex& registry) : registry_(registry) {}

  std::mutex& registry_;
  LabelledCells<UpstreamMetrics> upstreams_;
  LabelledCells<Counter> rejected_;
  LabelledCells<Counter> timeouts_;
  LabelledCells<ListenerCells> listeners_;
  std::array<Counter, 3> protocols_;     // by Protocol
  std::array<Counter, 4> tls_requests_;  // [TLSv1.3?][client certificate verified?]
};

class Metrics {
 public:
  explicit Metrics(size_t shards);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  MetricsShard& shard(size_t i) { return *shards_[i]; }

  // The whole exposition: every family with HELP and TYPE, each series summed over the shards.
  // Safe to call from any thread while the workers count.
  std::string renderPrometheus() const;

  // viscount_access_log_dropped_total calls `fn` at render, from the rendering thread.
  void setAccessLogDroppedSource(std::function<uint64_t()> fn);
  // viscount_access_log_sampled_out_total, likewise.
  void setAccessLogSampledOutSource(std::function<uint64_t()> fn);

 private:
  mutable std::mutex registry_;
  std::vector<std::unique_ptr<MetricsShard>> shards_;
  std::function<uint64_t()> access_log_dropped_;
  std::function<uint64_t()> access_log_sampled_out_;
  const double start_time_seconds_;
};

}  // namespace viscount
