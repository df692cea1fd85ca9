#pragma once

// The request phase (phase 2 of ARCHITECTURE.md's path): everything done to a client's request
// head before it may go upstream, in order — context ids, trace context, hop-by-hop sanitizing,
// forwarding headers, the deadline header and a Host for a request without one. The lifecycle
// calls it once per request; admission (request_limiter.h) follows it.

#include <optional>
#include <string_view>

#include "config/config.h"
#include "filters/context_filter.h"
#include "filters/id_generator.h"
#include "proxy/http/http_message.h"
#include "proxy/http/request_context.h"

namespace viscount {

// What the request-headers phase needs to rewrite a request head (filterRequestHead).
struct RequestFilterInput {
  const ContextFilter& context;
  bool trusted = false;  // the peer is in context.trusted_sources
  std::string_view client_ip;
  // Set when the listener takes the user id from client certificates (see ContextFilter).
  std::optional<std::string_view> certificate_user;
  std::string_view deadline_header;     // empty: off
  Duration budget{};                    // the upstream's request timeout
  std::string_view upstream_authority;  // the Host of a request that named none
};

// The request-headers phase's rewrite of a client's head, in order: context ids (which also
// strip context-header names out of Connection, so sanitizing cannot remove the ids chosen),
// hop-by-hop sanitizing, forwarding headers, the deadline header, and a Host for a request
// without one. Returns the request's budget: `budget`, or a smaller one a trusted client sent in
// the deadline header. Views into `ctx` and `input` end up in `head`.
Duration filterRequestHead(RequestHead& head, RequestContext& ctx, IdGenerator& ids,
                           const RequestFilterInput& input);

}  // namespace viscount
