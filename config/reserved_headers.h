#pragma once

// Header names a context id (request, correlation or user id) may not use: they belong to
// framing, hop-by-hop handling, routing, tracing, forwarding or the proxy's error replies, and
// reusing one would let two parts of the proxy fight over the same header. One list for the
// config loader (--validate) and the context filter, so the two cannot disagree.

#include <string_view>

#include "proxy/http/ascii.h"

namespace viscount {

inline constexpr std::string_view kReservedContextHeaders[] = {
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "upgrade",
    "http2-settings",
    "trailer",
    "traceparent",
    "tracestate",
    "x-forwarded-for",
    "x-forwarded-proto",
    // The other client-identity headers (filters/forwarded_headers.h), which the forwarding
    // filter removes or sets after the context filter has chosen the ids.
    "x-real-ip",
    "forwarded",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-server",
    "x-original-forwarded-for",
    "x-client-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "x-cluster-client-ip",
    "fastly-client-ip",
    "proxy-status",
    "content-type",
};

inline bool isReservedContextHeader(std::string_view name) {
  for (std::string_view reserved : kReservedContextHeaders) {
    if (equalsIgnoreCase(name, reserved)) return true;
  }
  return false;
}

}  // namespace viscount
