#pragma once

// Hop-by-hop headers (RFC 9110 §7.6.1) never cross the proxy, in either direction: the fixed
// set below plus every header a `Connection` header names. The proxy writes its own framing
// and connection management for the next hop. The forwarding headers are forwarded_headers.h's.

#include <string_view>

#include "filters/forwarded_headers.h"
#include "proxy/http/http_message.h"

namespace viscount {

// connection, keep-alive, proxy-connection, te, transfer-encoding, upgrade, http2-settings
// (case-insensitive).
bool isHopByHopHeader(std::string_view name);

// Removes the hop-by-hop set and every header listed in a Connection header, except `host`.
// Runs after the context filter, which keeps its own headers out of reach of Connection.
void sanitizeRequestHeaders(RequestHead& head);
void sanitizeResponseHeaders(ResponseHead& head);
// Trailers may not carry framing, routing or hop-by-hop fields (RFC 9110 section 6.5.1), nor
// content-type or authorization: those are removed, in both directions.
void sanitizeTrailers(HeaderList& trailers);

}  // namespace viscount
