#pragma once

// Serialises HTTP/1.1 heads and chunked framing into a Buffer. Framing headers are always
// rebuilt from the real lengths (content_length / chunked), never copied from the peer.

#include <string_view>

#include "proxy/http/http_message.h"
#include "proxy/http/upstream_request.h"
#include "proxy/net/buffer.h"

namespace viscount {

std::string_view reasonPhrase(int status);

// Request line and headers to an HTTP/1.1 upstream.
void encodeRequestHead(Buffer& out, const UpstreamRequest& req);

enum class BodyFraming : unsigned char { kNone, kContentLength, kChunked, kUntilClose };

// Status line and headers to an HTTP/1.x client; `framing` says how the body that follows is
// delimited, `connection_close` adds "connection: close" and `keep_alive_10` adds
// "connection: keep-alive" (HTTP/1.0 clients that asked for it).
void encodeResponseHead(Buffer& out, int status, const HeaderList& headers, BodyFraming framing,
                        uint64_t content_length, bool connection_close, bool keep_alive_10);
void encodeInformational(Buffer& out, int status, const HeaderList* headers);
// The 101 that turns a client connection into a tunnel: `headers` (hop-by-hop already removed),
// then `Connection: upgrade` and the `upgrade` the upstream switched to.
void encodeSwitchingProtocols(Buffer& out, const HeaderList& headers, std::string_view upgrade);

void encodeChunk(Buffer& out, std::string_view data);
void encodeLastChunk(Buffer& out, const HeaderList* trailers);

void appendDecimal(Buffer& out, uint64_t value);

}  // namespace viscount
