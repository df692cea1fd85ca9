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
  virtual void format(ErrorCode code, const RequestContext& ctx, ResponseHead& head,
                      std::string& body) const = 0;

  // The format for a request with this head; before a head was read (a 400 from the parser),
  // the JSON page.
  static const LocalReplyFormat& forRequest(const RequestHead& head);
  static const LocalReplyFormat& json();
};

}  // namespace viscount
