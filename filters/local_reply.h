#pragma once

// What a request gets when viscount answers it itself (phase 7 of the request path): the status,
// `proxy-status` and `retry-after` of the error table (proxy/http/errors.h) and a body in a format
// the client can read. The lifecycle asks for the format once per request, from its head, and
// never builds a reply itself: a second format (gRPC's trailers-only answer) is one more
// LocalReplyFormat and one more case in forRequest(), with no change to the Exchange.

#include <string>

#include "proxy/http/errors.h"
#include "proxy/http/http_message.h"
#include "proxy/http/request_context.h"

namespace viscount {

class LocalReplyFormat {
 public:
  virtual ~LocalReplyFormat() = default;

  // Fills `head` (status, the format's own fields, whether the connection closes) and appends the
  // body to `body` for `code`. `ctx` carries the request's ids, already chosen. The caller adds
  // the context ids' response headers and the content length.
  // An empty body means the head alone is the answer (gRPC's trailers-only response): it is
  // sent with END_STREAM and no content-length.
  virtual void format(ErrorCode code, const RequestContext& ctx, ResponseHead& head,
                      std::string& body) const = 0;

  // For a failure after the response head went out: fills `trailers` that end the response and
  // returns true, or returns false when the format has no such ending (the stream is reset).
  virtual bool formatTrailers(ErrorCode, const RequestContext&, HeaderList&) const { return false; }

  // The format for a request with this head: gRPC's for a gRPC request over HTTP/2 (gRPC needs
  // HTTP/2's trailers-only answers), else the JSON page, also before a head was read (a 400 from
  // the parser).
  // `grpc`: the caller's isGrpcRequest(head.headers), so the headers are looked at once.
  static const LocalReplyFormat& forRequest(const RequestHead& head, bool grpc);
  static const LocalReplyFormat& json();
};

}  // namespace viscount
