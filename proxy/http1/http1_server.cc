#include "proxy/http1/http1_server.h"

#include <sys/socket.h>

#include "proxy/http/header_tokens.h"
#include "telemetry/metrics.h"

namespace viscount {
namespace {

// Bytes of later pipelined requests we hold while the current one is in flight.
constexpr size_t kPipelineBudget = BufferCache::kBlockSize;
// The HTTP/2 connection preface (RFC 9113 section 3.4): a client with prior knowledge.
constexpr std::string_view kHttp2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
// How long a closing connection keeps reading and discarding after our last response.
constexpr std::chrono::milliseconds kLingerTimeout{2000};

bool startsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && equalsIgnoreCase(s.substr(0, prefix.size()), prefix);
}

// The first request line in `in` (after the empty lines a client may send first) ends with
// HTTP/1.0. Only asked about a request the parser refused once its request line was complete.
bool requestLineIsHttp10(std::string_view in) {
  while (in.substr(0, 2) == "\r\n")
    in.remove_prefix(2);
  const std::string_view line = in.substr(0, in.find("\r\n"));
  constexpr std::string_view kVersion = " HTTP/1.0";
  return line.size() > kVersion.size() && line.substr(line.size() - kVersion.size()) == kVersion;
}

}  // namespace

// What a connection needs only while it reads a request: the parser with its header spans, how
// far it has read, and when the request began. The parser reports to the connection through it.
class Http1RequestReader final : public Http1ParserHandler {
 public:
  Http1RequestReader() : parser(Http1Parser::Kind::kRequest, *this) {}

  Http1ServerConnection* connection = nullptr;
  Http1Parser parser;
  size_t parsed = 0;  // bytes of the connection's input the parser has seen (of this head)
  MonoTime start{};   // the request's first byte
  WallTime start_wall{};

 private:
  void onMessageBegin() override { connection->onMessageBegin(); }
  bool onHeadersComplete(Http1Head& head) override { return connection->onHeadersComplete(head); }
  void onBody(std::string_view data) override { connection->onBody(data); }
  // The parser's trailer list lives until its onMessageComplete returns.
  void onTrailers(HeaderList& list) override { trailers_ = &list; }
  bool onMessageComplete() override {
    HeaderList* list = trailers_;
    trailers_ = nullptr;
    connection->onMessageComplete(list);
    return true;  // pause: the next pipelined request waits for this response
  }

  HeaderList* trailers_ = nullptr;
};

Http1ReaderPool::~Http1ReaderPool() {
  for (Http1RequestReader* r : free_)
    delete r;
}

Http1RequestReader* Http1ReaderPool::take() {
  if (free_.empty()) return new Http1RequestReader;
  Http1RequestReader* r = free_.back();
  free_.pop_back();
  return r;
}

void Http1ReaderPool::give(Http1RequestReader* reader) {
  if (free_.size() >= kMaxCached) {
    delete reader;
    return;
  }
  reader->connection = nullptr;
  reader->parser.reset();
  reader->parser.trim();
  reader->parsed = 0;
  reader->start = MonoTime{};
  reader->start_wall = WallTime{};
  free_.push_back(reader);
}

const char* makeRequestHead(Http1Head& h, bool tls, RequestHead& head) {
  head.method = h.method;
  head.target = h.target;
  head.authority = h.host;
  head.scheme = tls ? "https" : "http";
  head.protocol = h.version_minor == 0 ? Protocol::kHttp10 : Protocol::kHttp11;
  head.headers = std::move(*h.headers);
  head.content_length = h.content_length;
  head.chunked = h.chunked;
  head.expect_continue = h.expect_continue;
  head.keep_alive = h.keep_alive;

  if (startsWithIgnoreCase(head.target, "http://") ||
      startsWithIgnoreCase(head.target, "https://")) {
    std::string_view rest = head.target.substr(head.target.find("//") + 2);
    const size_t slash = rest.find_first_of("/?");
    head.authority = rest.substr(0, slash);
    head.target = slash == std::string_view::npos ? std::string_view("/") : rest.substr(slash);
    if (head.target.front() == '?') {
      // "http://host?x" has an empty path: keep the query but we need a leading '/'.
      head.target = head.headers.keep("/" + std::string(head.target));
    }
    if (head.authority.empty() || !isValidAuthority(head.authority)) {
      return "absolute-form target without a valid host";
    }
  } else if (head.target.front() != '/' && head.target != "*") {
    return "request target is not origin-form";
  }
  return nullptr;
}

Http1ServerConnection::Http1ServerConnection(ConnectionServices& services, Http1ReaderPool& readers,
                                             int fd, size_t listener_index, PeerInfo peer)
    : ClientConnection(services.loop(), fd, listener_index),
      services_(services),
      readers_(readers),
      timer_(services.loop().timers(), &Http1ServerConnection::onTimer, this),
      peer_(peer) {}

Http1ServerConnection::~Http1ServerConnection() {
  releaseReader();
}

void Http1ServerConnection::start(std::string_view preread) {
  const auto& listener = services_.listener(listenerIndex());
  // Until the first byte a new connection is idle; the header deadline starts with that byte.
  // Over TLS the first plaintext byte comes only after the handshake, so the handshake and the
  // first request head share the header deadline from the accept (as nginx does): a client
  // that stalls its handshake is not kept for the whole idle timeout.
  timer_.arm(tls() != nullptr ? std::min(listener.timeouts.idle, listener.timeouts.request_headers)
                              : listener.timeouts.idle);
  startEvents();
  if (!preread.empty()) {
    in_.append(preread);
    onData();
  }
}

size_t Http1ServerConnection::readBudget() const {
  if (phase_ == Phase::kClosed) return 0;
  if (phase_ == Phase::kClosing) return lingering_ ? BufferCache::kBlockSize : 0;
  if (tunnel_) return in_.empty() ? BufferCache::kBlockSize : 0;
  if (exchange_ && request_done_) {
    return in_.size() >= kPipelineBudget ? 0 : kPipelineBudget - in_.size();
  }
  if (phase_ == Phase::kIdle || phase_ == Phase::kHeaders) {
    // One block beyond the limit, so an oversized head is seen and answered with 431.
    const size_t limit =
        static_cast<size_t>(services_.listener(listenerIndex()).limits.max_request_headers_size) +
        BufferCache::kBlockSize;
    return in_.size() >= limit ? 0 : limit - in_.size();
  }
  return BufferCache::kBlockSize;
}

bool Http1ServerConnection::awaitingInput() const {
  return phase_ == Phase::kHeaders || (phase_ == Phase::kActive && !request_done_);
}

// ---- reading -------------------------------------------------------------------------------

void Http1ServerConnection::onData() {
  if (phase_ == Phase::kClosing || phase_ == Phase::kClosed) {
    in_.clear();  // after a final response we only wait for our output to drain
    return;
  }
  if (tunnel_) {
    forwardTunnelBytes();
    return;
  }
  if (exchange_ && request_done_) return;  // a pipelined request waits its turn
  if (first_request_ && switchToHttp2()) return;
  parse();
}

bool Http1ServerConnection::switchToHttp2() {
  if (!services_.listener(listenerIndex()).http2) {
    first_request_ = false;
    return false;
  }
  const bool alpn_h2 = tls() != nullptr && tls()->alpn() == "h2";
  if (!alpn_h2) {
    const size_t n = std::min(in_.size(), kHttp2Preface.size());
    if (in_.view().substr(0, n) != kHttp2Preface.substr(0, n)) {
      first_request_ = false;  // HTTP/1 from here on
      return false;
    }
    if (n < kHttp2Preface.size()) {
      // The rest of the preface decides. Until then these bytes are a request head in the
      // making, bounded by the header deadline from the first one like any other: a client
      // that stops inside the preface would otherwise be kept for the whole idle timeout.
      if (phase_ == Phase::kIdle) {
        phase_ = Phase::kHeaders;
        timer_.arm(services_.listener(listenerIndex()).timeouts.request_headers);
      }
      return true;
    }
  }
  // The socket, its TLS session and what was read so far go to an HTTP/2 connection; this
  // object is deleted at the end of the turn.
  timer_.cancel();
  std::unique_ptr<TlsSession> tls;
  const int fd = releaseSocket(&tls);
  phase_ = Phase::kClosed;
  services_.owner().continueAsHttp2(*this, fd, peer_, std::move(tls), in_.view());
  in_.release();
  return true;
}

void Http1ServerConnection::parse() {
  if (reader_ == nullptr) {
    if (in_.empty()) return;
    // A new request: its limits are the listener's in the current config.
    const auto& limits = services_.listener(listenerIndex()).limits;
    reader_ = readers_.take();
    reader_->connection = this;
    reader_->parser.setMaxHeadBytes(limits.max_request_headers_size);
    reader_->parser.setMaxFields(limits.max_request_headers_count);
  } else if (in_.size() == reader_->parsed) {
    return;
  }
  Http1Parser& parser = reader_->parser;
  dispatching_ = true;
  const Http1Parser::Result r =
      parser.execute(in_.data(), reader_->parsed, in_.size() - reader_->parsed);
  dispatching_ = false;
  if (close_pending_) {
    closeConnection();
    return;
  }
  switch (r.status) {
    case Http1Parser::Status::kError:
      rejectRequest(parser.error() == ErrorCode::kNone ? ErrorCode::kBadRequest : parser.error());
      return;
    case Http1Parser::Status::kPaused:
      // This request is complete; whatever follows is the next one, parsed (by a fresh reader,
      // which is what a parser is between messages) when this one ends.
      in_.consume(reader_->parsed + r.consumed);
      releaseReader();
      return;
    case Http1Parser::Status::kOk:
      if (parser.inHeaders() && parser.messageStarted()) {
        reader_->parsed = in_.size();  // the head so far stays in place
      } else {
        in_.clear();
        reader_->parsed = 0;
        if (!parser.messageStarted()) releaseReader();  // only empty lines before a request
        if (!exchange_) in_.releaseIfEmpty();
      }
      return;
  }
}

void Http1ServerConnection::releaseReader() {
  if (reader_ == nullptr) return;
  readers_.give(reader_);
  reader_ = nullptr;
}

void Http1ServerConnection::onMessageBegin() {
  first_request_ = false;
  phase_ = Phase::kHeaders;
  is_head_ = false;
  reader_->start = Clock::now();
  reader_->start_wall = std::chrono::system_clock::now();
  // The header deadline runs from the first byte and is not reset by later ones.
  timer_.arm(services_.listener(listenerIndex()).timeouts.request_headers);
}

Exchange& Http1ServerConnection::newExchange() {
  WorkerSnapshotPtr snapshot = services_.snapshot();  // the exchange keeps it alive
  const ListenerRuntime& listener = snapshot->listeners[listenerIndex()];
  MonoTime start = reader_ != nullptr ? reader_->start : MonoTime{};
  WallTime start_wall = reader_ != nullptr ? reader_->start_wall : WallTime{};
  if (start == MonoTime{}) {
    start = Clock::now();
    start_wall = std::chrono::system_clock::now();
  }
  exchange_ = std::make_unique<Exchange>(services_.exchange(), std::move(snapshot), listener, *this,
                                         *this, peer_, tls(), start, start_wall);
  return *exchange_;
}

bool Http1ServerConnection::onHeadersComplete(Http1Head& h) {
  timer_.cancel();
  phase_ = Phase::kActive;
  client_minor_ = static_cast<uint8_t>(h.version_minor);
  keep_alive_ = h.keep_alive;
  is_head_ = h.method == "HEAD";
  request_done_ = false;
  response_started_ = false;
  response_done_ = false;
  close_after_ = false;
  request_has_body_ = h.chunked || (h.content_length && *h.content_length > 0);

  RequestHead head;
  if (const char* reason = makeRequestHead(h, tls() != nullptr, head)) {
    *h.headers = std::move(head.headers);
    reader_->parser.fail(ErrorCode::kBadRequest, reason);
    return false;
  }
  head.upgrade = allowedUpgrade(head.headers, h.version_minor, request_has_body_,
                                services_.listener(listenerIndex()).upgrades);

  Exchange& exchange = newExchange();
  exchange.onRequestHeaders(head);
  *h.headers = std::move(head.headers);  // give the vector back for the next request
  return true;
}

std::string_view allowedUpgrade(HeaderList& headers, int version_minor, bool has_body,
                                const std::vector<std::string>& allowed) {
  // HTTP/1.1 only, and the upgrade must be asked for in Connection. A request with a body is no
  // upgrade: its body would have to precede the tunnel's bytes, and an upstream that refused
  // could read those bytes as another request.
  if (version_minor != 1 || has_body) return {};
  bool connection_upgrade = false;
  for (const auto& f : headers.fields()) {
    if (f.removed || !equalsIgnoreCase(f.name, "connection")) continue;
    forEachListElement(f.value, [&](std::string_view token) {
      if (equalsIgnoreCase(token, "upgrade")) connection_upgrade = true;
    });
  }
  if (!connection_upgrade) return {};
  std::string tokens;
  for (const auto& f : headers.fields()) {
    if (f.removed || !equalsIgnoreCase(f.name, "upgrade")) continue;
    forEachListElement(f.value, [&](std::string_view token) {
      const std::string_view name = token.substr(0, token.find('/'));
      if (equalsIgnoreCase(name, "h2c")) return;  // never, whatever the config says
      for (const std::string& a : allowed) {
        if (!equalsIgnoreCase(name, a)) continue;
        if (!tokens.empty()) tokens.append(", ");
        tokens.append(token);
        return;
      }
    });
  }
  if (tokens.empty()) return {};
  return headers.keep(std::move(tokens));
}

void Http1ServerConnection::onBody(std::string_view data) {
  if (exchange_) exchange_->onRequestBody(data);
}

void Http1ServerConnection::onMessageComplete(HeaderList* trailers) {
  request_done_ = true;
  if (exchange_) {
    if (trailers != nullptr) {
      exchange_->onRequestTrailers(*trailers);
    } else {
      exchange_->onRequestComplete();
    }
  }
}

void Http1ServerConnection::rejectRequest(ErrorCode code) {
  // The framing can no longer be trusted: answer once and close.
  keep_alive_ = false;
  if (exchange_) {
    if (!exchange_->completed()) exchange_->sendLocalReply(code);
    return;
  }
  phase_ = Phase::kActive;
  request_done_ = true;
  request_has_body_ = false;
  Exchange& exchange = newExchange();
  // Log which request line was refused, when it got that far, with its version.
  if (reader_ != nullptr) {
    RequestContext& ctx = exchange.context();
    reader_->parser.requestLine(in_.data(), &ctx.method, &ctx.path);
    if (!ctx.method.empty() && requestLineIsHttp10(in_.view())) ctx.protocol = Protocol::kHttp10;
  }
  exchange.sendLocalReply(code);
}

void Http1ServerConnection::onTimer(void* arg) {
  auto* self = static_cast<Http1ServerConnection*>(arg);
  if (self->phase_ == Phase::kHeaders) {
    self->services_.metrics().timedOut("request_headers");
    self->rejectRequest(ErrorCode::kRequestHeaderTimeout);
  } else if (self->phase_ == Phase::kIdle) {
    const bool handshaking = self->tls() != nullptr && !self->tls()->handshakeDone();
    self->services_.metrics().timedOut(handshaking ? "tls_handshake" : "client_idle");
    self->closeConnection();  // idle keep-alive, or never spoke
  } else if (self->phase_ == Phase::kClosing) {
    self->closeConnection();  // done lingering
  }
}

// ---- client going away ---------------------------------------------------------------------

void Http1ServerConnection::clientGone(ErrorCode code) {
  // A TLS client that never finished its handshake (no common version or cipher, a rejected
  // or missing client certificate, a plaintext client on a TLS port, a stall) made no request.
  if (tls() != nullptr && !tls()->handshakeDone()) {
    services_.metrics().rejected("tls_handshake");
    closeConnection();
    return;
  }
  if (exchange_ && !exchange_->completed()) {
    exchange_->onDownstreamReset(code);
  } else if (phase_ == Phase::kHeaders && !exchange_) {
    // A request that never finished its head still gets its access-log line.
    Exchange& exchange = newExchange();
    exchange.onDownstreamReset(code);
  }
  closeConnection();
}

void Http1ServerConnection::onPeerClosed() {
  if (tunnel_ && phase_ == Phase::kActive && exchange_ && !exchange_->completed()) {
    // The client ended its side of the tunnel: a normal end. The upstream gets what is on its
    // way, then its connection closes.
    exchange_->onDownstreamEnd();
    closeConnection();
    return;
  }
  if (phase_ == Phase::kClosing && (response_done_ || !exchange_)) {
    closeConnection();
    return;
  }
  clientGone(ErrorCode::kClientDisconnected);
}

void Http1ServerConnection::onSocketError(int) {
  clientGone(ErrorCode::kClientDisconnected);
}

void Http1ServerConnection::onPeerHalfClosedWhileBlocked() {
  // Like nginx: a client that closes while its request is in flight has given up on it. A
  // tunnel's client may half-close while we hold its bytes back: its EOF is read in turn.
  if (tunnel_) return;
  if (exchange_ && !exchange_->completed()) clientGone(ErrorCode::kClientDisconnected);
}

// ---- writing -------------------------------------------------------------------------------

void Http1ServerConnection::sendContinue() {
  if (response_started_ || client_minor_ == 0) return;
  out_.append("HTTP/1.1 100 Continue\r\n\r\n");
  scheduleWrite();
}

void Http1ServerConnection::sendInformational(ResponseHead& head) {
  if (response_started_ || client_minor_ == 0) return;  // HTTP/1.0 has no 1xx
  encodeInformational(out_, head.status, &head.headers);
  scheduleWrite();
}

void Http1ServerConnection::sendResponseHead(ResponseHead& head, bool end_stream) {
  if (head.status == 101) {
    startTunnel(head);
    return;
  }
  response_started_ = true;
  // A request whose body is still arriving cannot be followed by another on this connection.
  close_after_ = !keep_alive_ || head.close_client || draining_ || services_.draining() ||
                 (!request_done_ && request_has_body_);
  uint64_t length = 0;
  const bool bodiless = head.status == 204 || head.status == 304 || head.status < 200;
  if (is_head_) {
    framing_ = head.content_length ? BodyFraming::kContentLength : BodyFraming::kNone;
    length = head.content_length.value_or(0);
  } else if (bodiless) {
    framing_ = BodyFraming::kNone;
  } else if (head.content_length) {
    framing_ = BodyFraming::kContentLength;
    length = *head.content_length;
  } else if (end_stream) {
    framing_ = BodyFraming::kContentLength;
  } else if (client_minor_ >= 1) {
    framing_ = BodyFraming::kChunked;
  } else {
    framing_ = BodyFraming::kUntilClose;
    close_after_ = true;
  }
  const bool keep_alive_10 = client_minor_ == 0 && !close_after_;
  encodeResponseHead(out_, head.status, head.headers, framing_, length, close_after_,
                     keep_alive_10);
  if (is_head_ || bodiless) framing_ = BodyFraming::kNone;  // no body bytes follow
  if (end_stream) finishResponse(nullptr);
  scheduleWrite();
}

void Http1ServerConnection::startTunnel(ResponseHead& head) {
  // The Exchange sends a 101 only for an upgrade this connection forwarded and the upstream
  // accepted: from here on the connection carries that protocol, and closes when it ends.
  response_started_ = true;
  tunnel_ = true;
  close_after_ = true;
  framing_ = BodyFraming::kUntilClose;
  timer_.cancel();
  encodeSwitchingProtocols(out_, head.headers, head.upgrade);
  scheduleWrite();
  // Bytes the client sent after its head, before the 101, waited unparsed: they are the
  // tunnel's first. More may wait in the socket, unread while we held those.
  forwardTunnelBytes();
  in_.releaseIfEmpty();  // a tunnel may idle for hours: no buffer held meanwhile
  if (phase_ == Phase::kActive) readSoon();
}

void Http1ServerConnection::forwardTunnelBytes() {
  if (in_.empty()) return;
  if (!exchange_ || exchange_->completed()) {
    in_.clear();
    return;
  }
  dispatching_ = true;  // a close the Exchange asks for waits until the bytes were handed over
  exchange_->onRequestBody(in_.view());
  dispatching_ = false;
  in_.clear();
  if (close_pending_) closeConnection();
}

void Http1ServerConnection::sendResponseBody(std::string_view data, bool end_stream) {
  if (!data.empty()) {
    switch (framing_) {
      case BodyFraming::kChunked:
        encodeChunk(out_, data);
        break;
      case BodyFraming::kContentLength:
      case BodyFraming::kUntilClose:
        out_.append(data);
        break;
      case BodyFraming::kNone:
        break;
    }
  }
  if (end_stream) finishResponse(nullptr);
  scheduleWrite();
}

void Http1ServerConnection::sendResponseTrailers(HeaderList& trailers) {
  finishResponse(&trailers);
  scheduleWrite();
}

void Http1ServerConnection::finishResponse(const HeaderList* trailers) {
  if (response_done_) return;
  if (framing_ == BodyFraming::kChunked) encodeLastChunk(out_, trailers);
  response_done_ = true;
  if (close_after_) phase_ = Phase::kClosing;
}

void Http1ServerConnection::resetStream(ErrorCode) {
  // HTTP/1 has no way to abort one response but to close the connection. What is already queued
  // still goes out first: the client then sees the response cut short by its own framing (a
  // short Content-Length body, or no last chunk), and the access log's status and bytes_out are
  // what it really got. The close follows when the output drains (onExchangeComplete), or after
  // the linger timeout if the client does not read.
  close_after_ = true;
  phase_ = Phase::kClosing;
  setReadDisabled(true);
  timer_.arm(kLingerTimeout);
}

void Http1ServerConnection::readDisable(bool disable) {
  setReadDisabled(disable);
}

void Http1ServerConnection::onOutputProgress() {
  if (exchange_ && bufferedOutput() < kLowWatermark) exchange_->onDownstreamWritable();
}

void Http1ServerConnection::onOutputDrained() {
  if (!exchange_) {
    if (phase_ == Phase::kClosing) lingerClose();
    return;
  }
  if (response_done_) {
    exchange_->onResponseSent();  // completes the exchange -> onExchangeComplete
  } else {
    exchange_->onDownstreamWritable();
  }
}

// ---- between requests ----------------------------------------------------------------------

void Http1ServerConnection::onExchangeComplete() {
  if (exchange_) loop_.deferDelete(std::move(exchange_));
  if (phase_ == Phase::kClosed) return;
  if (!response_done_ || close_after_ || !request_done_ || !keep_alive_) {
    phase_ = Phase::kClosing;
    if (bufferedOutput() == 0) lingerClose();
    return;
  }
  startNextRequest();
}

void Http1ServerConnection::startNextRequest() {
  phase_ = Phase::kIdle;
  request_done_ = false;
  response_started_ = false;
  response_done_ = false;
  is_head_ = false;
  if (draining_ || services_.draining()) {
    closeConnection();
    return;
  }
  setReadDisabled(false);
  if (reader_ != nullptr) reader_->parser.resume();  // (the reader went when the request ended)
  if (!in_.empty()) {
    parse();  // the next pipelined request
    if (phase_ != Phase::kIdle) return;
  }
  if (phase_ == Phase::kIdle) {
    in_.releaseIfEmpty();
    timer_.arm(services_.listener(listenerIndex()).timeouts.idle);
  }
}

void Http1ServerConnection::lingerClose() {
  // Closing a socket with unread input makes the kernel send RST, which can destroy our final
  // response before the client reads it. Half-close, read and discard until the client closes
  // or a short deadline passes (nginx's lingering close).
  if (phase_ == Phase::kClosed || lingering_) return;
  lingering_ = true;
  phase_ = Phase::kClosing;
  ::shutdown(fd(), SHUT_WR);
  setReadDisabled(false);
  timer_.arm(kLingerTimeout);
}

void Http1ServerConnection::drain() {
  draining_ = true;
  if (phase_ == Phase::kIdle && !exchange_) closeConnection();
}

void Http1ServerConnection::abandon() {
  if (exchange_ && !exchange_->completed()) exchange_->sendLocalReply(ErrorCode::kDraining);
}

void Http1ServerConnection::abort() {
  if (exchange_ && !exchange_->completed())
    exchange_->onDownstreamReset(ErrorCode::kClientDisconnected);
  closeConnection();
}

void Http1ServerConnection::closeConnection() {
  if (phase_ == Phase::kClosed) return;
  if (dispatching_) {
    close_pending_ = true;  // the parser is reading in_: close once it returns
    return;
  }
  phase_ = Phase::kClosed;
  timer_.cancel();
  if (exchange_ && !exchange_->completed())
    exchange_->onDownstreamReset(ErrorCode::kClientDisconnected);
  releaseReader();
  closeSocket();
  services_.owner().connectionClosed(*this);
}

}  // namespace viscount
