#pragma once

// A request header block received by the HTTP/2 server, as the protocol-neutral
// head the Exchange takes. The head goes on to upstreams that may speak HTTP/1,
// so what HTTP/2 allows and an HTTP/1 request line or field section does not is
// refused or rewritten here: the target must be visible ASCII, split cookies
// are joined, the authority is checked, and framing fields are kept out of the
// forwarded list (content-length is rebuilt from the real length, Expect:
// 100-continue is answered by the proxy).

#include <string>

#include "proxy/http/errors.h"
#include "proxy/http/http_message.h"
#include "proxy/http2/header_arena.h"

namespace viscount::h2 {

// Fills `head` from `block` (its views point into `block`); `tls` says how the
// client reached us, whatever its :scheme claims. False, with `*error` the
// answer to give, when the request is malformed or asks for what the proxy does
// not do (CONNECT, an Expect other than 100-continue).
bool buildRequestHead(const HeaderArena& block, bool tls, RequestHead& head, ErrorCode* error);

// A fresh Sec-WebSocket-Key (RFC 6455 section 4.1: 16 random bytes, base64) for the HTTP/1.1
// upgrade an extended CONNECT (RFC 8441) becomes upstream.
std::string websocketKey();

// Request trailers, copied into the list: the Exchange may keep them after
// `block` is reused.
void buildTrailers(const HeaderArena& block, HeaderList& trailers);

}  // namespace viscount::h2
