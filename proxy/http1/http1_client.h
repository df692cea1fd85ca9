#pragma once

// HTTP/1.1 to an upstream: one request at a time on a pooled connection. The connection goes
// back to the pool only when the request was fully written and the response ended cleanly with
// nothing after it; a framing error, an early response, extra bytes or a close does not.
//
// A request that asked for an upgrade may be answered with 101: the connection then leaves the
// pool for good and carries the tunnel's bytes both ways unframed, until either side closes.

#include "pool/upstream_connection.h"
#include "proxy/http/stream.h"
#include "proxy/http1/http1_parser.h"

namespace viscount {

class Http1ClientCodec final : public UpstreamCodec,
                               public UpstreamStream,
                               private Http1ParserHandler {
 public:
  // `max_informational`: 1xx heads allowed before a final response; `max_fields`: fields in one
  // head or trailer section. Beyond either the stream fails with upstream_protocol_error and the
  // connection is closed.
  explicit Http1ClientCodec(UpstreamConnection& connection, uint32_t max_informational = 10,
                            uint32_t max_fields = 100);

  // UpstreamCodec
  void start() override { connection_.ready(); }
  UpstreamStream& newStream(UpstreamStreamCallbacks& callbacks) override;
  size_t activeStreams() const override { return active_ ? 1 : 0; }
  size_t streamCapacity() const override { return active_ ? 0 : 1; }
  // Bytes on an idle HTTP/1 connection answer nothing: it is broken too.
  bool idleAndOpen() override { return connection_.socketIdleAndOpen(false); }

  // UpstreamStream
  void sendHead(const UpstreamRequest& request, bool end_stream) override;
  void sendBody(std::string_view data, bool end_stream) override;
  void sendTrailers(HeaderList& trailers) override;
  void reset() override;
  void readDisable(bool disable) override { setReadDisabled(disable); }
  size_t bufferedRequestBytes() const override { return connection_.bufferedOutput(); }

 private:
  // UpstreamCodec: socket events
  void onData() override;
  void onPeerClosed() override;
  void onSocketError(int err) override;
  void onOutputDrained() override;
  void onOutputProgress() override;
  size_t readBudget() const override;
  // Only once part of the response is in: a stream just handed this connection (its request
  // perhaps not even sent) has nothing in flight that a reset could cut.
  bool awaitingInput() const override {
    return callbacks_ != nullptr && !response_done_ && response_started_ && !tunnel_;
  }

  // Http1ParserHandler
  bool onHeadersComplete(Http1Head& head) override;
  void onBody(std::string_view data) override;
  void onTrailers(HeaderList& trailers) override;
  bool onMessageComplete() override;

  void parse();
  // The 101 ended the response head: the rest of in() and everything after is tunnel bytes.
  void startTunnel();
  void deliverTunnelBytes();
  void finishResponse(bool trailing_bytes);
  void failStream(ErrorCode code);

  Http1Parser parser_;
  UpstreamStreamCallbacks* callbacks_ = nullptr;
  ResponseHead response_;
  size_t parsed_ = 0;    // bytes of in() already given to the parser (the current head)
  bool active_ = false;  // a stream was started and has not ended
  bool request_chunked_ = false;
  bool request_done_ = false;
  uint64_t written_before_stream_ = 0;  // bytesWritten() when this request started
  bool headers_delivered_ = false;
  bool end_delivered_ = false;
  bool informational_ = false;
  uint32_t informational_seen_ = 0;  // 1xx heads of this stream's response
  const uint32_t max_informational_;
  bool response_done_ = false;
  bool response_started_ = false;  // bytes of this stream's response have arrived
  bool dispatching_ = false;
  bool reset_pending_ = false;
  bool upgrade_requested_ = false;   // the request carries Connection: upgrade
  bool tunnel_ = false;              // a 101 came: bytes pass unframed both ways
  bool close_when_drained_ = false;  // the tunnel's other side ended: flush, then close
};

}  // namespace viscount
