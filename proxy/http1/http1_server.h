#pragma once

// One client connection speaking HTTP/1.x: parses requests in order (pipelined requests wait
// in the buffer until the one before has been answered), hands each to an Exchange, and encodes
// the Exchange's response with framing rebuilt from real lengths. Enforces the listener's
// header deadline (from the first byte: slowloris), idle keep-alive timeout and header size.
//
// An idle keep-alive connection is kept small: the parser and everything else that only a
// request being read needs (Http1RequestReader) come from the worker's pool at a request's first
// byte and go back once its end has been parsed; empty buffers hold no memory.
//
// A request with `Connection: upgrade` and an Upgrade token its listener allows goes upstream as
// an upgrade. Until the answer, bytes after its head wait unparsed (like a pipelined request).
// A 101 turns the connection into a tunnel: those bytes and all later ones go to the Exchange as
// the request's body, and the Exchange's response body is written unframed. Any other answer is
// an ordinary response, and the waiting bytes are parsed as the next request.

#include <memory>
#include <vector>

#include "proxy/http/stream.h"
#include "proxy/http1/http1_encoder.h"
#include "proxy/http1/http1_parser.h"
#include "proxy/lifecycle/client_connection.h"
#include "proxy/lifecycle/exchange.h"
#include "proxy/lifecycle/services.h"
#include "proxy/lifecycle/worker_snapshot.h"
#include "proxy/net/intrusive_list.h"
#include "proxy/net/socket_connection.h"
#include "proxy/net/timer_queue.h"

namespace viscount {

class Http1RequestReader;

// Request readers not in use: each worker keeps a few for the next request on any connection, so
// reading a request allocates nothing and an idle connection holds no parser.
class Http1ReaderPool {
 public:
  Http1ReaderPool() = default;
  Http1ReaderPool(const Http1ReaderPool&) = delete;
  Http1ReaderPool& operator=(const Http1ReaderPool&) = delete;
  ~Http1ReaderPool();

  Http1RequestReader* take();
  // Resets the reader (and trims what grew) before keeping it.
  void give(Http1RequestReader* reader);
  size_t cached() const { return free_.size(); }

 private:
  static constexpr size_t kMaxCached = 128;
  std::vector<Http1RequestReader*> free_;
};

// The RequestHead an HTTP/1 request head becomes; `h.headers` moves into `head.headers` (move
// them back to reuse the vector). An absolute-form target (RFC 9112 section 3.2.2) gives its
// authority, which wins over Host, and the upstream gets origin-form. Returns nullptr, or why
// the target cannot be forwarded (a 400).
const char* makeRequestHead(Http1Head& h, bool tls, RequestHead& head);

// RFC 9110 section 7.8: the Upgrade tokens of an HTTP/1.1 request without a body, that asked for
// an upgrade in Connection, whose protocol name is in `allowed` (h2c never), joined by ", " and
// kept in `headers`; empty when the request is no upgrade. For RequestHead::upgrade.
std::string_view allowedUpgrade(HeaderList& headers, int version_minor, bool has_body,
                                const std::vector<std::string>& allowed);

class Http1ServerConnection final : public ClientConnection, public DownstreamStream {
 public:
  Http1ServerConnection(ConnectionServices& services, Http1ReaderPool& readers, int fd,
                        size_t listener_index, PeerInfo peer);
  ~Http1ServerConnection() override;

  // Starts reading. `preread` holds bytes already taken from the socket (protocol sniffing).
  void start(std::string_view preread = {});
  // ClientConnection
  void drain() override;
  void abandon() override;
  void abort() override;

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
  // A request head or body still arriving (not: waiting for our response, the common case).
  bool awaitingInput() const override;

  // From the parser, through the reader.
  friend class Http1RequestReader;
  void onMessageBegin();
  bool onHeadersComplete(Http1Head& head);
  void onBody(std::string_view data);
  // `trailers` is null when the request had none.
  void onMessageComplete(HeaderList* trailers);

  void parse();
  void startTunnel(ResponseHead& head);
  void forwardTunnelBytes();
  // The reader exists from a request's first byte until the parser has seen its end.
  void releaseReader();
  Exchange& newExchange();
  void rejectRequest(ErrorCode code);
  void clientGone(ErrorCode code);
  void finishResponse(const HeaderList* trailers);
  void closeConnection();
  void lingerClose();
  void startNextRequest();
  static void onTimer(void* arg);

  enum class Phase : unsigned char { kIdle, kHeaders, kActive, kClosing, kClosed };

  // HTTP/2 on this socket (the connection preface, or ALPN "h2"): true when the socket was
  // handed to an HTTP/2 connection and this object is done.
  bool switchToHttp2();

  // Ordered, and the flags packed, so that an idle connection wastes no padding.
  ConnectionServices& services_;
  Http1ReaderPool& readers_;
  Http1RequestReader* reader_ = nullptr;  // from readers_ while a request is read
  std::unique_ptr<Exchange> exchange_;
  Timer timer_;
  PeerInfo peer_;
  Phase phase_ = Phase::kIdle;
  BodyFraming framing_ = BodyFraming::kNone;
  uint8_t client_minor_ = 1;
  bool keep_alive_ : 1 = true;    // the client allows reuse after this request
  bool close_after_ : 1 = false;  // we close after this response
  bool is_head_ : 1 = false;
  bool request_done_ : 1 = false;
  bool request_has_body_ : 1 = false;
  bool response_started_ : 1 = false;
  bool response_done_ : 1 = false;
  bool dispatching_ : 1 = false;
  bool close_pending_ : 1 = false;
  bool draining_ : 1 = false;
  bool lingering_ : 1 = false;
  bool first_request_ : 1 = true;  // nothing parsed yet: the HTTP/2 preface may still come
  bool tunnel_ : 1 = false;        // a 101 went out: bytes pass unparsed both ways
};

}  // namespace viscount
