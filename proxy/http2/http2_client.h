#pragma once

// HTTP/2 to an upstream (h2c:// with prior knowledge, or https:// when ALPN agreed on h2): one
// nghttp2 client session per pooled connection, carrying many streams at once, each an
// UpstreamStream of its own, so the Exchange cannot tell it from HTTP/1.
//
// The connection counts as connected once the peer's SETTINGS arrive: only then is its
// SETTINGS_MAX_CONCURRENT_STREAMS known, and the pool never starts more streams than that (nor
// more than the upstream's max_concurrent_requests). Flow control is the backpressure: a stream
// whose response the client reads slowly gets no WINDOW_UPDATE until it resumes, so at most one
// stream window (kStreamWindow) arrives beyond the Exchange's watermark; the connection window is
// replenished at once, so one paused stream never stalls the others. Request bodies wait in the
// stream until flow control lets them out, and the session's output is pumped into the socket
// buffer only up to a cap (h2::pumpOutput).
//
// Everything that can reach the pool (a stream's end, a failure, new settings, GOAWAY) is handled
// after nghttp2 returns, never inside its callbacks. A stream refused by the upstream
// (REFUSED_STREAM, or above a GOAWAY's last stream id) reports request_sent=false: the upstream
// guarantees it did not process it, so an idempotent request is retried elsewhere.

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <string>
#include <vector>

#include "pool/upstream_connection.h"
#include "proxy/http/stream.h"
#include "proxy/http2/body_source.h"
#include "proxy/http2/header_arena.h"
#include "proxy/http2/http2_common.h"
#include "proxy/http2/receive_window.h"
#include "proxy/net/intrusive_list.h"

namespace viscount {

class Http2ClientCodec;

// One request and its response on an HTTP/2 upstream connection.
class Http2ClientStream final : public UpstreamStream, public ListHook<> {
 public:
  Http2ClientStream(Http2ClientCodec& codec, UpstreamStreamCallbacks& callbacks);

  // UpstreamStream
  void sendHead(const UpstreamRequest& request, bool end_stream) override;
  void sendBody(std::string_view data, bool end_stream) override;
  void sendTrailers(HeaderList& trailers) override;
  void reset() override;
  void readDisable(bool disable) override;
  size_t bufferedRequestBytes() const override { return body_.size(); }

 private:
  friend class Http2ClientCodec;

  // nghttp2's data source for the request body.
  static ssize_t readBody(nghttp2_session* session, int32_t stream_id, uint8_t* buf, size_t length,
                          uint32_t* data_flags, nghttp2_data_source* source, void* user_data);
  void resumeBody();
  // A response header block (head, 1xx or trailers) was received whole.
  void onHeaderBlock(bool end_stream);
  void onResponseEnd();
  // Hands the end of the response to the Exchange (terminal: nothing follows).
  UpstreamStreamCallbacks* takeCallbacks();
  // How the stream ended without a response, for onUpstreamReset.
  ErrorCode failure() const;
  bool requestSent() const { return headers_sent_ && !refused(); }
  bool refused() const { return close_code_ == NGHTTP2_REFUSED_STREAM; }

  Http2ClientCodec& codec_;
  UpstreamStreamCallbacks* callbacks_;  // null once the Exchange knows the end, or let go
  int32_t id_ = -1;

  // --- request ---
  h2::BodySource body_;        // waiting for flow control
  bool request_done_ = false;  // the last request frame was produced
  bool headers_sent_ = false;  // the HEADERS frame went into the connection's output

  // --- response ---
  h2::HeaderArena received_;  // the header block being received
  int status_ = 0;
  uint32_t informational_seen_ = 0;    // 1xx heads received
  bool final_head_ = false;            // the final (non-1xx) head was delivered
  h2::ReceiveWindow response_window_;  // paused by readDisable
  bool protocol_error_ = false;
  bool closed_ = false;
  uint32_t close_code_ = NGHTTP2_NO_ERROR;
};

class Http2ClientCodec final : public UpstreamCodec {
 public:
  // The window each stream grants the upstream, and the connection's (given back at once).
  static constexpr uint32_t kStreamWindow = 64 * 1024;
  static constexpr uint32_t kConnectionWindow = 16 * 1024 * 1024;
  // Session output held in the connection's send buffer at most (beyond one frame).
  static constexpr size_t kOutputCap = 64 * 1024;

  // `max_streams`: never more streams at once than this, whatever the peer allows.
  // `max_informational` 1xx heads per response and `max_fields` fields per header block; beyond
  // either the stream is reset and fails with upstream_protocol_error.
  Http2ClientCodec(UpstreamConnection& connection, size_t max_streams,
                   uint32_t max_informational = 10, uint32_t max_fields = 100);
  ~Http2ClientCodec() override;

  // UpstreamCodec
  void start() override;
  UpstreamStream& newStream(UpstreamStreamCallbacks& callbacks) override;
  size_t activeStreams() const override { return active_; }
  size_t streamCapacity() const override;
  bool idleAndOpen() override;
  bool multiplexed() const override { return true; }

 private:
  friend class Http2ClientStream;

  // UpstreamCodec: socket events
  void onData() override;
  void onPeerClosed() override;
  void onSocketError(int err) override;
  void onOutputDrained() override;
  void onOutputProgress() override;
  void prepareOutput() override;
  bool awaitingInput() const override { return active_ > 0; }

  // nghttp2 callbacks
  static nghttp2_session_callbacks* makeCallbacks();
  static int onBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* user_data);
  static int onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t flags,
                      void* user_data);
  static int onFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user_data);
  static int onDataChunk(nghttp2_session*, uint8_t flags, int32_t stream_id, const uint8_t* data,
                         size_t len, void* user_data);
  static int onFrameSend(nghttp2_session*, const nghttp2_frame* frame, void* user_data);
  static int onInvalidFrame(nghttp2_session*, const nghttp2_frame* frame, int error,
                            void* user_data);
  static int onStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code,
                           void* user_data);
  static int onError(nghttp2_session*, int lib_error_code, const char* message, size_t length,
                     void* user_data);

  Http2ClientStream* streamOf(int32_t stream_id) const;
  // After nghttp2 returned: streams that ended, settings, GOAWAY, a finished session.
  void afterSession();
  void finishStreams();
  // The connection cannot go on: every stream still open is reset with `code`.
  void failConnection(ErrorCode code, const std::string& detail);
  // The socket closed or failed: a reset, a connect failure, or the end of a peer that broke
  // the protocol (one that answered the preface with something else than SETTINGS).
  void transportLost(const std::string& reason);
  bool acceptsStreams() const;

  nghttp2_session* session_ = nullptr;
  size_t max_streams_;
  uint32_t max_informational_;
  uint32_t max_fields_;
  IntrusiveList<Http2ClientStream> streams_;  // open in nghttp2
  IntrusiveList<Http2ClientStream> closed_;   // closed by nghttp2, not yet reported
  std::vector<Http2ClientStream*> writable_;  // request bodies that fell below the low watermark
  size_t active_ = 0;                         // streams_ + closed_
  h2::HeaderBlock request_block_;             // scratch for the request head being submitted
  ResponseHead response_;                     // scratch for the response head being delivered
  bool ready_ = false;                        // the peer's first SETTINGS arrived
  bool settings_changed_ = false;             // a SETTINGS frame arrived since afterSession
  bool goaway_ = false;                       // the peer said GOAWAY: no new streams
  bool terminated_ = false;                   // we said GOAWAY for a connection error of the peer's
  bool received_ = false;                     // the peer sent something
  bool failed_ = false;
  std::string violation_;  // nghttp2's word on the peer's connection error, if any
  bool output_capped_ = false;
};

}  // namespace viscount
