#pragma once

// A gRPC client's deadline (`grpc-timeout`) in the request phase. The client's value lowers the
// request's budget (the upstream's `timeouts.request` stays the ceiling) and is taken out of the
// head: the lifecycle sends the upstream what is left of the budget when the request goes out
// (UpstreamRequest::setGrpcTimeout), as it does for the deadline header.

#include <optional>

#include "config/config.h"
#include "proxy/http/http_message.h"

namespace viscount {

struct GrpcDeadline {
  bool malformed = false;  // a 400 (INTERNAL for the gRPC client)
  // The budget of the request; nullopt when it has none (`grpc_no_deadline: unbounded` and no
  // grpc-timeout from the client).
  std::optional<Duration> budget;
};

// `budget` is what the request phase chose from the upstream's config and the deadline header.
// viscount ends the call a little before the client's own deadline (a fiftieth of it, at most
// 20 ms): the client's clock started before its request was sent, and the answer that says why
// the call ended should come from the proxy, not be cut off by the client's cancel.
GrpcDeadline takeGrpcTimeout(HeaderList& headers, Duration budget, bool unbounded_without);

}  // namespace viscount
