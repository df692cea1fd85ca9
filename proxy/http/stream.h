#pragma once

// The two halves of one proxied request, as the Exchange sees them. A codec implements the
// downstream half (an HTTP/1 connection's current request, or an HTTP/2 stream) and the upstream
// half (a request on a pooled HTTP/1 connection, or an HTTP/2 client stream); the Exchange in
// between never knows which protocol it is talking to.

#include <cstddef>
#include <string_view>

#include "proxy/http/errors.h"
#include "proxy/http/http_message.h"

namespace viscount {

class UpstreamRequest;

// Whoever owns an Exchange (the downstream codec).
class ExchangeOwner {
 public:
  virtual ~ExchangeOwner() = default;
  // The exchange is finished (logged, upstream released); the owner may delete it (deferred).
  virtual void onExchangeComplete() = 0;
};

// Client side, driven by the Exchange. The downstream side also owns its Exchange (an HTTP/1
// connection, an HTTP/2 stream), so it is an ExchangeOwner too: one vtable pointer for both.
class DownstreamStream : public ExchangeOwner {
 public:
  // "100 Continue" for a client that sent Expect: 100-continue.
  virtual void sendContinue() = 0;
  // Other 1xx responses from the upstream (103 Early Hints, ...).
  virtual void sendInformational(ResponseHead& head) = 0;
  virtual void sendResponseHead(ResponseHead& head, bool end_stream) = 0;
  virtual void sendResponseBody(std::string_view data, bool end_stream) = 0;
  virtual void sendResponseTrailers(HeaderList& trailers) = 0;  // ends the response
  // The response cannot be completed: close the connection (HTTP/1) or reset the stream (h2).
  virtual void resetStream(ErrorCode reason) = 0;
  // Backpressure on the request body.
  virtual void readDisable(bool disable) = 0;
  virtual size_t bufferedResponseBytes() const = 0;
  // The request is a HEAD: the response carries no body.
  virtual bool isHeadRequest() const = 0;
};

// Upstream side, driven by the Exchange.
class UpstreamStream {
 public:
  virtual ~UpstreamStream() = default;
  virtual void sendHead(const UpstreamRequest& request, bool end_stream) = 0;
  virtual void sendBody(std::string_view data, bool end_stream) = 0;
  virtual void sendTrailers(HeaderList& trailers) = 0;  // ends the request
  // Abandon the request: HTTP/1 closes the connection, HTTP/2 resets the stream.
  virtual void reset() = 0;
  virtual void readDisable(bool disable) = 0;  // backpressure on the response body
  virtual size_t bufferedRequestBytes() const = 0;
};

// What an upstream stream reports back.
class UpstreamStreamCallbacks {
 public:
  virtual ~UpstreamStreamCallbacks() = default;
  virtual void onUpstreamInformational(ResponseHead& head) = 0;
  virtual void onUpstreamHeaders(ResponseHead& head, bool end_stream) = 0;
  virtual void onUpstreamBody(std::string_view data, bool end_stream) = 0;
  virtual void onUpstreamTrailers(HeaderList& trailers) = 0;
  // The stream failed; `request_sent` says whether any request byte reached the upstream.
  virtual void onUpstreamReset(ErrorCode code, bool request_sent) = 0;
  // The request's buffered bytes fell below the low watermark.
  virtual void onUpstreamWritable() = 0;
};

// Output buffering limits for streaming bodies: above kHighWatermark bytes queued towards a peer
// the other side stops reading; below kLowWatermark it resumes.
constexpr size_t kHighWatermark = 64 * 1024;
constexpr size_t kLowWatermark = 16 * 1024;

}  // namespace viscount
