#include "telemetry/metrics.h"

#include <algorithm>
#include <chrono>
#include <map>

#include "telemetry/prometheus_text.h"

#ifndef VISCOUNT_VERSION
#define VISCOUNT_VERSION "unknown"
#endif

namespace viscount {
namespace {

double secondsSinceEpoch(WallTime t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

// One upstream's values summed over all shards.
struct UpstreamTotals {
  std::map<int, uint64_t> requests;  // by status code
  std::array<uint64_t, kErrorCodeSlots> errors{};
  std::array<uint64_t, kGrpcStatusCount> grpc{};
  Histogram::Totals duration;
  Histogram::Totals upstream_duration;
  std::map<std::string, int64_t, std::less<>> connections;  // by state
  int64_t queue_depth = 0;
  int64_t in_flight = 0;
  int64_t pool_waiters = 0;
  uint64_t connect_failures = 0;
  uint64_t reused = 0;
  uint64_t retries = 0;
};

struct ListenerTotals {
  int64_t open = 0;
  uint64_t accepted = 0;
  int64_t tunnels = 0;
  uint64_t tunnels_opened = 0;
  uint64_t tunnel_bytes_in = 0;
  uint64_t tunnel_bytes_out = 0;
};

template <typename Map>
auto& entry(Map& map, std::string_view key) {
  auto it = map.find(key);
  if (it == map.end()) it = map.emplace(std::string(key), typename Map::mapped_type{}).first;
  return it->second;
}

}  // namespace

Metrics::Metrics(size_t shards)
    : start_time_seconds_(secondsSinceEpoch(std::chrono::system_clock::now())) {
  shards = std::max<size_t>(shards, 1);
  for (size_t i = 0; i < shards; ++i) {
    shards_.push_back(std::unique_ptr<MetricsShard>(new MetricsShard(registry_)));
  }
}

Metrics::~Metrics() = default;

void Metrics::setAccessLogDroppedSource(std::function<uint64_t()> fn) {
  std::lock_guard lock(registry_);
  access_log_dropped_ = std::move(fn);
}

void Metrics::setAccessLogSampledOutSource(std::function<uint64_t()> fn) {
  std::lock_guard lock(registry_);
  access_log_sampled_out_ = std::move(fn);
}

std::string Metrics::renderPrometheus() const {
  std::map<std::string, UpstreamTotals, std::less<>> upstreams;
  std::map<std::string, uint64_t, std::less<>> rejected;
  std::map<std::string, uint64_t, std::less<>> timeouts;
  std::map<std::string, ListenerTotals, std::less<>> listeners;
  uint64_t access_log_dropped = 0;
  uint64_t access_log_sampled_out = 0;
  std::array<uint64_t, 3> protocols{};
  std::array<uint64_t, 4> tls_requests{};
  {
    std::lock_guard lock(registry_);
    for (const auto& shard : shards_) {
      shard->upstreams_.forEach([&](std::string_view name, const UpstreamMetrics& up) {
        UpstreamTotals& t = entry(upstreams, name);
        up.requests_.forEach([&](int code, uint64_t n) { t.requests[code] += n; });
        for (size_t i = 0; i < kErrorCodeSlots; ++i)
          t.errors[i] += up.errors_[i].value();
        for (size_t i = 0; i < t.grpc.size(); ++i)
          t.grpc[i] += up.grpc_[i].value();
        t.duration.add(up.duration_);
        t.upstream_duration.add(up.upstream_duration_);
        up.connections_.forEach([&](std::string_view state, const Gauge& g) {
          entry(t.connections, state) += g.value();
        });
        t.queue_depth += up.queue_depth_.value();
        t.in_flight += up.in_flight_.value();
        t.pool_waiters += up.pool_waiters_.value();
        t.connect_failures += up.connect_failures_.value();
        t.reused += up.reused_.value();
        t.retries += up.retries_.value();
      });
      for (size_t i = 0; i < protocols.size(); ++i)
        protocols[i] += shard->protocols_[i].value();
      for (size_t i = 0; i < tls_requests.size(); ++i)
        tls_requests[i] += shard->tls_requests_[i].value();
      shard->rejected_.forEach(
          [&](std::string_view reason, const Counter& c) { entry(rejected, reason) += c.value(); });
      shard->timeouts_.forEach(
          [&](std::string_view kind, const Counter& c) { entry(timeouts, kind) += c.value(); });
      shard->listeners_.forEach([&](std::string_view name, const MetricsShard::ListenerCells& c) {
        ListenerTotals& t = entry(listeners, name);
        t.open += c.open.value();
        t.accepted += c.accepted.value();
        t.tunnels += c.tunnels.value();
        t.tunnels_opened += c.tunnels_opened.value();
        t.tunnel_bytes_in += c.tunnel_bytes_in.value();
        t.tunnel_bytes_out += c.tunnel_bytes_out.value();
      });
    }
    if (access_log_dropped_) access_log_dropped = access_log_dropped_();
    if (access_log_sampled_out_) access_log_sampled_out = access_log_sampled_out_();
  }

  PrometheusText text;
  text.family("viscount_build_info", "gauge", "Build information; the value is always 1.");
  text.sample("viscount_build_info", {{"version", VISCOUNT_VERSION}}, int64_t{1});
  text.family("viscount_process_start_time_seconds", "gauge",
              "Start time of the process since the Unix epoch, in seconds.");
  text.sample("viscount_process_start_time_seconds", {}, start_time_seconds_);

  text.family("viscount_requests_total", "counter",
              "Requests completed, by upstream and status code sent (0: none could be sent).");
  for (const auto& [name, t] : upstreams) {
    for (const auto& [code, n] : t.requests) {
      const std::string code_text = std::to_string(code);
      text.sample("viscount_requests_total", {{"upstream", name}, {"code", code_text}}, n);
    }
  }
  text.family("viscount_requests_by_protocol_total", "counter",
              "Requests completed, by the protocol the client spoke.");
  for (size_t i = 0; i < protocols.size(); ++i) {
    text.sample("viscount_requests_by_protocol_total",
                {{"protocol", toString(static_cast<Protocol>(i))}}, protocols[i]);
  }
  text.family("viscount_tls_requests_total", "counter",
              "Requests completed over TLS, by TLS version and whether the client certificate "
              "was verified (mTLS).");
  for (size_t i = 0; i < tls_requests.size(); ++i) {
    if (tls_requests[i] == 0) continue;
    text.sample("viscount_tls_requests_total",
                {{"tls_version", i >= 2 ? "TLSv1.3" : "TLSv1.2"},
                 {"client_cert_verified", (i & 1) != 0 ? "true" : "false"}},
                tls_requests[i]);
  }
  text.family("viscount_request_errors_total", "counter",
              "Requests that ended in an error, by upstream and error code.");
  for (const auto& [name, t] : upstreams) {
    for (size_t i = 0; i < kErrorCodeSlots; ++i) {
      if (t.errors[i] == 0) continue;
      const std::string_view error = errorInfo(static_cast<ErrorCode>(i)).code;
      text.sample("viscount_request_errors_total", {{"upstream", name}, {"error", error}},
                  t.errors[i]);
    }
  }
  text.family("viscount_grpc_requests_total", "counter",
              "gRPC requests completed, by upstream and the grpc-status the client was given.");
  for (const auto& [name, t] : upstreams) {
    for (size_t i = 0; i < t.grpc.size(); ++i) {
      if (t.grpc[i] == 0) continue;
      text.sample("viscount_grpc_requests_total",
                  {{"upstream", name}, {"grpc_code", grpcStatusName(static_cast<int>(i))}},
                  t.grpc[i]);
    }
  }
  text.family("viscount_request_duration_seconds", "histogram",
              "Time from the start of a request to its completion, by upstream.");
  for (const auto& [name, t] : upstreams) {
    text.histogram("viscount_request_duration_seconds", {{"upstream", name}}, t.duration);
  }
  text.family("viscount_upstream_request_duration_seconds", "histogram",
              "Time spent on the upstream, for requests that reached it, by upstream.");
  for (const auto& [name, t] : upstreams) {
    text.histogram("viscount_upstream_request_duration_seconds", {{"upstream", name}},
                   t.upstream_duration);
  }
  text.family("viscount_upstream_connections", "gauge",
              "Upstream connections, by upstream and state (idle, active, connecting).");
  for (const auto& [name, t] : upstreams) {
    for (const auto& [state, n] : t.connections) {
      text.sample("viscount_upstream_connections", {{"upstream", name}, {"state", state}}, n);
    }
  }
  // One sample per upstream.
  auto perUpstream = [&](std::string_view family, std::string_view type, std::string_view help,
                         auto value) {
    text.family(family, type, help);
    for (const auto& [name, t] : upstreams)
      text.sample(family, {{"upstream", name}}, value(t));
  };
  perUpstream("viscount_upstream_queue_depth", "gauge",
              "Requests waiting for a slot under the upstream's concurrency limit, by upstream.",
              [](const UpstreamTotals& t) { return t.queue_depth; });
  perUpstream("viscount_upstream_requests_in_flight", "gauge",
              "Requests holding a slot of the upstream's concurrency limit, by upstream.",
              [](const UpstreamTotals& t) { return t.in_flight; });
  perUpstream("viscount_upstream_pool_waiters", "gauge",
              "Requests waiting for an upstream connection, by upstream.",
              [](const UpstreamTotals& t) { return t.pool_waiters; });
  perUpstream("viscount_upstream_connect_failures_total", "counter",
              "Upstream connection attempts that failed, by upstream.",
              [](const UpstreamTotals& t) { return t.connect_failures; });
  perUpstream("viscount_upstream_connections_reused_total", "counter",
              "Upstream requests sent on a pooled keep-alive connection, by upstream.",
              [](const UpstreamTotals& t) { return t.reused; });
  perUpstream("viscount_upstream_retries_total", "counter",
              "Requests sent again after an attempt that never reached the upstream, by upstream.",
              [](const UpstreamTotals& t) { return t.retries; });

  text.family("viscount_rejected_total", "counter",
              "Requests refused by the proxy before reaching the upstream, by reason.");
  for (const auto& [reason, n] : rejected) {
    text.sample("viscount_rejected_total", {{"reason", reason}}, n);
  }
  text.family("viscount_timeouts_total", "counter",
              "Timeouts that ended a wait, a request or a connection, by kind.");
  for (const auto& [kind, n] : timeouts) {
    text.sample("viscount_timeouts_total", {{"kind", kind}}, n);
  }
  text.family("viscount_downstream_connections", "gauge", "Open client connections, by listener.");
  for (const auto& [name, t] : listeners) {
    text.sample("viscount_downstream_connections", {{"listener", name}}, t.open);
  }
  text.family("viscount_downstream_connections_total", "counter",
              "Client connections accepted, by listener.");
  for (const auto& [name, t] : listeners) {
    text.sample("viscount_downstream_connections_total", {{"listener", name}}, t.accepted);
  }
  text.family("viscount_tunnels_active", "gauge",
              "Tunnels (HTTP upgrades, e.g. websockets) open now, by listener.");
  for (const auto& [name, t] : listeners) {
    text.sample("viscount_tunnels_active", {{"listener", name}}, t.tunnels);
  }
  text.family("viscount_tunnels_total", "counter", "Tunnels established, by listener.");
  for (const auto& [name, t] : listeners) {
    text.sample("viscount_tunnels_total", {{"listener", name}}, t.tunnels_opened);
  }
  text.family("viscount_tunnel_bytes_total", "counter",
              "Bytes carried by tunnels that ended, by listener and direction (in: from the "
              "client).");
  for (const auto& [name, t] : listeners) {
    text.sample("viscount_tunnel_bytes_total", {{"listener", name}, {"direction", "in"}},
                t.tunnel_bytes_in);
    text.sample("viscount_tunnel_bytes_total", {{"listener", name}, {"direction", "out"}},
                t.tunnel_bytes_out);
  }

  text.family("viscount_access_log_dropped_total", "counter",
              "Access-log lines dropped because the queue was full or the output failed.");
  text.sample("viscount_access_log_dropped_total", {}, access_log_dropped);
  text.family("viscount_access_log_sampled_out_total", "counter",
              "Access-log lines of successful requests left out by logging.sample.success.");
  text.sample("viscount_access_log_sampled_out_total", {}, access_log_sampled_out);
  return text.take();
}

void MetricsShard::requestCompleted(UpstreamMetrics& up, const RequestContext& ctx) {
  up.requests_.add(ctx.status);
  up.duration_.observe(ctx.durationMs() / 1000.0);
  if (const auto upstream_ms = ctx.upstreamMs())
    up.upstream_duration_.observe(*upstream_ms / 1000.0);
  if (ctx.error != ErrorCode::kNone) {
    const size_t slot = std::min(static_cast<size_t>(ctx.error), kErrorCodeSlots - 1);
    up.errors_[slot].add();
  }
  protocols_[static_cast<size_t>(ctx.protocol)].add();
  if (ctx.grpc && ctx.grpc_status >= 0) {
    up.grpc_[ctx.grpc_status < kGrpcStatusCount ? ctx.grpc_status : 2].add();
  }
  if (!ctx.tls_version.empty()) {
    tls_requests_[(ctx.tls_version == "TLSv1.3" ? 2 : 0) + (ctx.client_cert_verified ? 1 : 0)]
        .add();
  }
}

}  // namespace viscount
