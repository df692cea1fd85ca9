#pragma once

// The one place that maps every failure of a request to what the client sees: HTTP status,
// the contract's error code, and the RFC 9209 proxy-status error type. Nothing else in the
// proxy chooses an error status.

#include <string_view>

namespace viscount {

enum class ErrorCode : unsigned char {
  kNone,
  kBadRequest,
  kHeadersTooLarge,
  kBodyTooLarge,
  kRequestHeaderTimeout,
  kUriTooLong,
  kNotImplemented,
  kVersionNotSupported,
  kExpectationFailed,
  kUpstreamConnectFailed,
  kUpstreamReset,
  kUpstreamProtocolError,
  kOverloaded,
  kPoolTimeout,
  kDraining,
  kUpstreamConnectTimeout,
  kUpstreamTimeout,
  kClientDisconnected,
  kClientTimeout,
  kTunnelIdleTimeout,
  kInternalError,
  kCount,  // number of codes, not a code
};

struct ErrorInfo {
  std::string_view code;          // access log `error` and JSON body `error`
  int status;                     // HTTP status for a local reply (0: no reply is possible)
  std::string_view proxy_status;  // RFC 9209 error type
  bool close_connection;          // the client connection cannot be reused after it
  bool retry_after;               // a 503 the client may retry later
};

constexpr ErrorInfo errorInfo(ErrorCode code) {
  switch (code) {
    case ErrorCode::kNone:
      return {"", 0, "", false, false};
    case ErrorCode::kBadRequest:
      return {"bad_request", 400, "http_request_error", true, false};
    case ErrorCode::kHeadersTooLarge:
      return {"headers_too_large", 431, "http_request_error", true, false};
    case ErrorCode::kBodyTooLarge:
      return {"body_too_large", 413, "http_request_error", true, false};
    case ErrorCode::kRequestHeaderTimeout:
      return {"request_header_timeout", 408, "http_request_error", true, false};
    case ErrorCode::kUriTooLong:
      return {"uri_too_long", 414, "http_request_error", true, false};
    case ErrorCode::kNotImplemented:
      return {"not_implemented", 501, "http_request_error", true, false};
    case ErrorCode::kVersionNotSupported:
      return {"version_not_supported", 505, "http_request_error", true, false};
    case ErrorCode::kExpectationFailed:
      return {"expectation_failed", 417, "http_request_error", true, false};
    case ErrorCode::kUpstreamConnectFailed:
      return {"upstream_connect_failed", 502, "connection_refused", false, false};
    case ErrorCode::kUpstreamReset:
      return {"upstream_reset", 502, "connection_terminated", false, false};
    case ErrorCode::kUpstreamProtocolError:
      return {"upstream_protocol_error", 502, "http_protocol_error", false, false};
    case ErrorCode::kOverloaded:
      return {"overloaded", 503, "connection_limit_reached", false, true};
    case ErrorCode::kPoolTimeout:
      return {"pool_timeout", 503, "connection_limit_reached", false, true};
    case ErrorCode::kDraining:
      return {"draining", 503, "proxy_internal_response", true, true};
    case ErrorCode::kUpstreamConnectTimeout:
      return {"upstream_connect_timeout", 504, "connection_timeout", false, false};
    case ErrorCode::kUpstreamTimeout:
      return {"upstream_timeout", 504, "http_response_timeout", false, false};
    case ErrorCode::kClientDisconnected:
      return {"client_disconnected", 0, "", true, false};
    case ErrorCode::kClientTimeout:
      return {"client_timeout", 0, "", true, false};
    case ErrorCode::kTunnelIdleTimeout:
      return {"tunnel_idle_timeout", 0, "", true, false};
    case ErrorCode::kInternalError:
    case ErrorCode::kCount:
      return {"internal_error", 500, "proxy_internal_error", true, false};
  }
  return {"internal_error", 500, "proxy_internal_error", true, false};
}

}  // namespace viscount
