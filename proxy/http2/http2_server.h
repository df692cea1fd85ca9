#pragma once

// One client connection speaking HTTP/2 (nghttp2 server session): h2 via ALPN on TLS listeners,
// h2c with prior knowledge on cleartext ones (Http1ServerConnection hands the socket over when
// it sees the connection preface). Every stream is an independent request with its own Exchange:
// its own ids, access-log line, limits slot and timeouts. Flow control gives backpressure both
// ways: request DATA is acknowledged (WINDOW_UPDATE) only as the upstream side takes it, and
// response bytes wait in the stream until the client's window and our capped send buffer let
// them go.
//
// Flood defences: nghttp2's options (rapid reset, CONTINUATION, SETTINGS and PING floods; see
// http2_common.h), the header list counted in decoded bytes against the listener's header
// limits (431), at most 100 concurrent streams, reads paused while our output to a client that
// does not read is full, and a stalled client (zero window, unread output) bounded by the idle
// timeout.

#include <nghttp2/nghttp2.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "proxy/http/stream.h"
#include "proxy/http2/body_source.h"
#include "proxy/http2/header_arena.h"
#include "proxy/http2/http2_common.h"
#include "proxy/http2/receive_window.h"
#include "proxy/lifecycle/client_connection.h"
#include "proxy/lifecycle/exchange.h"
#include "proxy/lifecycle/services.h"
#include "proxy/lifecycle/worker_snapshot.h"
#include "proxy/net/timer_queue.h"

namespace viscount {

class Http2ServerConnection;

// One request stream: the Exchange's downstream side.
class Http2Stream final : public Deletable, public DownstreamStream, public ListHook<> {
 public:
  Http2Stream(Http2ServerConnection& connection, int32_t id);
  ~Http2Stream() override;

  // DownstreamStream
  void sendContinue() override;
  void sendInformational(ResponseHead& head) override;
  void sendResponseHead(ResponseHead& head, bool end_stream) override;
  void sendResponseBody(std::string_view data, bool end_stream) override;
  void sendResponseTrailers(HeaderList& trailers) override;
  void resetStream(ErrorCode reason) override;
  void readDisable(bool disable) override;
  size_t bufferedResponseBytes() const override { return body_.size(); }
  bool isHeadRequest() const override { return is_head_; }

  // ExchangeOwner
  void onExchangeComplete() override;

 private:
  friend class Http2ServerConnection;

  // Passes a received piece of the request body on, holding back the declared last byte.
  void requestBody(std::string_view data);
  // END_STREAM is confirmed: the held byte goes on. False when the exchange is over.
  bool releaseHeldByte();
  Exchange& newExchange();
  // Submits a header block (response, 1xx, trailers) for this stream.
  void submitHeaders(int status, const HeaderList& headers, std::optional<uint64_t> length,
                     bool end_stream, bool with_body);
  void resumeData();
  static ssize_t readData(nghttp2_session* session, int32_t id, uint8_t* buf, size_t length,
                          uint32_t* flags, nghttp2_data_source* source, void* user);

  Http2ServerConnection& connection_;
  const int32_t id_;
  std::unique_ptr<Exchange> exchange_;
  MonoTime start_{};
  WallTime start_wall_{};

  h2::HeaderArena received_;              // the header block being received
  ErrorCode refused_ = ErrorCode::kNone;  // the head broke a listener limit

  h2::BodySource body_;               // response body waiting for the client's window
  h2::ReceiveWindow request_window_;  // paused while the upstream side is full
  // A body that reaches its declared content-length may still be followed by more DATA, which
  // makes the request malformed (RFC 9113 section 8.1.1); only END_STREAM settles it. The last
  // byte of a declared body is held back until then, so the upstream never receives such a
  // request whole.
  std::optional<uint64_t> body_left_;  // declared bytes not received yet
  char held_byte_ = 0;
  bool holding_byte_ = false;

  bool is_head_ = false;
  bool request_done_ = false;  // END_STREAM from the client
  bool response_submitted_ = false;
  bool bodiless_ = false;          // HEAD, 204, 304: DATA is dropped
  bool reset_after_body_ = false;  // a cut response: RST_STREAM once body_ has gone out
  bool exchange_done_ = false;
  bool closed_ = false;         // nghttp2 closed the stream
  bool head_not_sent_ = false;  // nghttp2 could not send the response head: we reset
};

class Http2ServerConnection final : public ClientConnection {
 public:
  Http2ServerConnection(ConnectionServices& services, int fd, size_t listener_index, PeerInfo peer,
                        std::unique_ptr<TlsSession> tls);
  ~Http2ServerConnection() override;

  // Starts the session; `preread` holds bytes the HTTP/1 connection already read.
  void start(std::string_view preread);

  // ClientConnection
  void drain() override;
  void abandon() override;
  void abort() override;

 private:
  friend class Http2Stream;

  // SocketConnection
  void onData() override;
  void onPeerClosed() override;
  void onSocketError(int err) override;
  void onOutputDrained() override;
  void onOutputProgress() override;
  size_t readBudget() const override;
  // While any stream is in progress more frames are expected (WINDOW_UPDATE, DATA, RST_STREAM):
  // a reset that came with the last of them must be seen (see SocketConnection).
  bool awaitingInput() const override { return active_streams_ > 0; }
  bool beforeWrite() override;
  void afterWrite() override;

  // nghttp2 callbacks
  static int onBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int onBeginFrame(nghttp2_session*, const nghttp2_frame_hd* hd, void* user);
  // nghttp2 ends a session whose header block runs past 8 CONTINUATION frames as a fatal error,
  // after which it sends nothing. An 8th that does not end the block means a 9th would follow,
  // which nghttp2 refuses before any callback sees it: ending the session ourselves at that 8th
  // queues the GOAWAY RFC 9113 section 5.4.1 asks for, and accepts exactly what nghttp2 accepts.
  static constexpr int kMaxContinuations = 8;
  static int onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t flags,
                      void* user);
  static int onInvalidHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                             size_t namelen, const uint8_t* value, size_t valuelen, uint8_t flags,
                             void* user);
  static int onFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int onDataChunk(nghttp2_session*, uint8_t flags, int32_t id, const uint8_t* data,
                         size_t len, void* user);
  static int onFrameSend(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int onStreamClose(nghttp2_session*, int32_t id, uint32_t error_code, void* user);
  static int onFrameNotSend(nghttp2_session*, const nghttp2_frame* frame, int error, void* user);

  Http2Stream* stream(int32_t id);
  void headersComplete(Http2Stream& s, bool end_stream);
  void trailersComplete(Http2Stream& s);
  void requestEnded(Http2Stream& s);
  void streamGone(Http2Stream& s);  // deletes it (deferred)
  // Runs a piece of nghttp2 input or output; a close asked for meanwhile happens afterwards.
  void afterSessionCall();
  void checkDone();
  void closeConnection(ErrorCode reason);
  void armProgressTimer();
  bool clientStalled();
  static void onProgressTimer(void* arg);
  static void onHeaderTimer(void* arg);

  ConnectionServices& services_;
  PeerInfo peer_;
  nghttp2_session* session_ = nullptr;
  IntrusiveList<Http2Stream> streams_;
  size_t active_streams_ = 0;  // streams whose exchange has not completed
  std::vector<Http2Stream*> writable_;
  h2::HeaderBlock block_;
  h2::ResetBudget reset_budget_;
  Timer progress_timer_;  // idle connection, or a client that stopped reading
  Timer header_timer_;    // a header block split over frames that does not finish
  int in_session_ = 0;
  bool close_pending_ = false;
  bool draining_ = false;
  bool idle_goaway_ = false;
  int continuations_ = 0;  // CONTINUATION frames of the header block being received
  bool closed_ = false;
  ErrorCode close_reason_ = ErrorCode::kClientDisconnected;
};

}  // namespace viscount
