#pragma once

// One client connection speaking HTTP/1.x: parses requests in order (pipelined requests wait
// in the buffer until the one before has been answered), hands each to an Exchange, and encodes
// the Exchange's response with framing rebuilt from real lengths. Enforces the listener's
// header deadline (from the first byte: slowloris), idle keep-alive timeout and header size.

#include <memory>

#include "proxy/exchange.h"
#include "proxy/http1_encoder.h"
#include "proxy/http1_parser.h"
#include "proxy/intrusive_list.h"
#include "proxy/socket_connection.h"
#include "proxy/stream.h"
#include "proxy/timer_queue.h"
#include "proxy/worker_snapshot.h"

namespace viscount {

class Worker;
struct ConnectionListTag {};

// The RequestHead an HTTP/1 request head becomes; `h.headers` moves into `head.headers` (move
// them back to reuse the vector). An absolute-form target (RFC 9112 section 3.2.2) gives its
// authority, which wins over Host, and the upstream gets origin-form. Returns nullptr, or why
// the target cannot be forwarded (a 400).
const char* makeRequestHead(Http1Head& h, bool tls, RequestHead& head);

class Http1ServerConnection final : public Deletable,
                                    public SocketConnection,
                                    public DownstreamStream,
                                    public ExchangeOwner,
                                    public ListHook<ConnectionListTag>,
                                    private Http1ParserHandler {
 public:
  Http1ServerConnection(Worker& worker, int fd, size_t listener_index, PeerInfo peer);
  ~Http1ServerConnection() override;

  // Starts reading. `preread` holds bytes already taken from the socket (protocol sniffing).
  void start(std::string_view preread = {});
  // Drain: close now when idle, else after the current response.
  void drain();
  // Drain timeout: a request still waiting for its response gets 503 `draining` (the client may
  // retry elsewhere); a response in progress is cut. The connection closes afterwards.
  void abandon();
  // Shutdown: close now, whatever is in flight.
  void abort();
  size_t listenerIndex() const { return listener_index_; }

  // DownstreamStream
  void sendContinue() override;
  void sendInformational(ResponseHead& head) override;
  void sendResponseHead(ResponseHead& head, bool end_stream) override;
  void sendResponseBody(std::string_view data, bool end_stream) override;
  void sendResponseTrailers(HeaderList& trailers) override;
  void resetStream(ErrorCode reason) override;
  void readDisable(bool disable) override;
  size_t bufferedResponseBytes() const override { return bufferedOutput(); }
  bool isHeadRequest() const override { return is_head_; }

  // ExchangeOwner
  void onExchangeComplete() override;

 private:
  // SocketConnection
  void onData() override;
  void onPeerClosed() override;
  void onSocketError(int err) override;
  void onPeerHalfClosedWhileBlocked() override;
  void onOutputDrained() override;
  void onOutputProgress() override;
  size_t readBudget() const override;

  // Http1ParserHandler
  void onMessageBegin() override;
  bool onHeadersComplete(Http1Head& head) override;
  void onBody(std::string_view data) override;
  void onTrailers(HeaderList& trailers) override;
  bool onMessageComplete() override;

  void parse();
  Exchange& newExchange();
  void rejectRequest(ErrorCode code);
  void clientGone(ErrorCode code);
  void finishResponse(const HeaderList* trailers);
  void closeConnection();
  void lingerClose();
  void startNextRequest();
  static void onTimer(void* arg);

  enum class Phase : unsigned char { kIdle, kHeaders, kActive, kClosing, kClosed };

  Worker& worker_;
  size_t listener_index_;
  PeerInfo peer_;
  Http1Parser parser_;
  std::unique_ptr<Exchange> exchange_;
  Timer timer_;
  MonoTime request_start_{};
  WallTime request_start_wall_{};
  size_t parsed_ = 0;
  Phase phase_ = Phase::kIdle;
  BodyFraming framing_ = BodyFraming::kNone;
  uint8_t client_minor_ = 1;
  bool keep_alive_ = true;    // the client allows reuse after this request
  bool close_after_ = false;  // we close after this response
  bool is_head_ = false;
  bool request_done_ = false;
  bool request_has_body_ = false;
  bool response_started_ = false;
  bool response_done_ = false;
  bool has_trailers_ = false;
  bool dispatching_ = false;
  bool close_pending_ = false;
  bool draining_ = false;
  bool lingering_ = false;
  HeaderList trailers_;
};

}  // namespace viscount
