#pragma once

// The typed per-request context: the sidecar's version of the in-process ContextVars. Exactly one
// per request (HTTP/1 exchange or HTTP/2 stream), owned by that request, never shared and never
// global. Filters fill the ids, the proxy fills timings and outcome, and the access log reads it
// once, at completion.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proxy/http/errors.h"
#include "proxy/http/request_trail.h"

namespace viscount {

enum class Protocol : unsigned char { kHttp10, kHttp11, kHttp2 };

constexpr const char* toString(Protocol p) {
  switch (p) {
    case Protocol::kHttp10:
      return "HTTP/1.0";
    case Protocol::kHttp11:
      return "HTTP/1.1";
    case Protocol::kHttp2:
      return "HTTP/2";
  }
  return "HTTP/1.1";
}

using MonoTime = std::chrono::steady_clock::time_point;
using WallTime = std::chrono::system_clock::time_point;

struct RequestContext {
  // --- context ids, as sent upstream ---
  std::string request_id;
  std::string correlation_id;
  std::optional<std::string> user_id;    // only from a trusted source
  std::string trace_id;                  // 32 lowercase hex, empty when trace context is off
  std::string span_id;                   // 16 lowercase hex: the span this hop created
  std::string traceparent;               // the full header value sent upstream
  bool trace_sampled_by_caller = false;  // an incoming traceparent carried the sampled flag

  // --- the request ---
  std::string method;
  std::string path;  // request target as received
  Protocol protocol = Protocol::kHttp11;
  std::string client_address;    // "ip:port"
  std::string_view tls_version;  // "TLSv1.3" (OpenSSL's static name); empty for cleartext
  bool client_cert_verified = false;

  // --- the upstream ---
  std::string upstream;          // upstream name from the config
  std::string upstream_address;  // "ip:port" of the last attempt, empty if none
  uint32_t attempts = 0;

  // --- timings ---
  WallTime start_wall{};
  MonoTime start{};
  std::optional<MonoTime> upstream_start;  // first byte written to the upstream
  std::optional<MonoTime> upstream_end;    // last response byte, or the failure
  MonoTime end{};
  // The access log's `timings`, each null when its phase did not happen: waiting for a
  // concurrency slot (0 when admitted at once), for upstream connections (summed over attempts),
  // the last attempt's connect when it opened a new connection, and its request-sent to
  // response-head time.
  std::optional<std::chrono::nanoseconds> queue_time;
  std::optional<std::chrono::nanoseconds> pool_wait_time;
  std::optional<std::chrono::nanoseconds> connect_time;
  std::optional<std::chrono::nanoseconds> upstream_headers_time;
  RequestTrail trail;

  // --- headers the access log was asked for (logging.headers), empty unless configured ---
  // Names point into the config snapshot the request holds; a header absent from the message is
  // nullopt, repeats are joined with ", ".
  using LoggedHeaders = std::vector<std::pair<std::string_view, std::optional<std::string>>>;
  LoggedHeaders logged_request_headers;   // as the client sent them
  LoggedHeaders logged_response_headers;  // as the upstream sent them

  // --- outcome ---
  int status = 0;  // sent to the client; 0 if none could be sent
  ErrorCode error = ErrorCode::kNone;
  uint64_t bytes_in = 0;   // request body bytes from the client
  uint64_t bytes_out = 0;  // response body bytes to the client
  // gRPC (proxy/http/grpc_wire.h): the request's content-type says so; the status the client was
  // given (from the upstream's trailers or trailers-only head, or viscount's own reply), -1 when
  // none; its message (decoded, bounded) only when the status is not 0.
  bool grpc = false;
  int grpc_status = -1;
  std::string grpc_message;
  // The protocol of an established tunnel (the 101's Upgrade, e.g. "websocket"); empty when the
  // request did not become one. A tunnel's bytes_in/bytes_out count the tunnelled bytes.
  std::string upgrade;

  double durationMs() const {
    return std::chrono::duration<double, std::milli>(end - start).count();
  }
  std::optional<double> upstreamMs() const {
    if (!upstream_start) return std::nullopt;
    MonoTime stop = upstream_end ? *upstream_end : end;
    return std::chrono::duration<double, std::milli>(stop - *upstream_start).count();
  }
};

}  // namespace viscount
