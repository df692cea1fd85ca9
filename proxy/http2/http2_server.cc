#include "proxy/http2/http2_server.h"

#include <algorithm>

#include "proxy/http2/request_head.h"
#include "telemetry/metrics.h"

namespace viscount {
namespace {

// Bytes of frames queued towards the client before nghttp2 is asked for more: a client that
// does not read holds at most this much of our output (plus each stream's watermarked body).
constexpr size_t kOutputCap = 64 * 1024;
// Received DATA is acknowledged per stream as the request body moves on, but for the whole
// connection at once, so one paused stream cannot starve the others.
constexpr int32_t kConnectionWindow = 1 << 20;

Http2ServerConnection* self(void* user) {
  return static_cast<Http2ServerConnection*>(user);
}

// Whether the listener lets websockets through (RFC 8441 is for websockets only).
bool allowsWebsocket(const ListenerConfig& listener) {
  for (const std::string& token : listener.upgrades) {
    if (token == "websocket") return true;
  }
  return false;
}

}  // namespace

// ---- stream --------------------------------------------------------------------------------

Http2Stream::Http2Stream(Http2ServerConnection& connection, int32_t id)
    : connection_(connection), id_(id), body_(&connection.loop().buffers()) {}

Http2Stream::~Http2Stream() = default;

Exchange& Http2Stream::newExchange() {
  ConnectionServices& services = connection_.services_;
  WorkerSnapshotPtr snapshot = services.snapshot();
  const ListenerRuntime& listener = snapshot->listeners[connection_.listenerIndex()];
  exchange_ =
      std::make_unique<Exchange>(services.exchange(), std::move(snapshot), listener, *this, *this,
                                 connection_.peer_, connection_.tls(), start_, start_wall_);
  ++connection_.active_streams_;
  return *exchange_;
}

void Http2Stream::requestBody(std::string_view data) {
  if (body_left_) {
    *body_left_ -= std::min<uint64_t>(*body_left_, data.size());  // nghttp2 never passes more
    if (*body_left_ == 0 && !data.empty() && !request_done_) {
      held_byte_ = data.back();
      holding_byte_ = true;
      data.remove_suffix(1);
    }
  }
  if (!data.empty()) exchange_->onRequestBody(data);
}

bool Http2Stream::releaseHeldByte() {
  if (!exchange_ || exchange_done_) return false;
  if (holding_byte_) {
    holding_byte_ = false;
    exchange_->onRequestBody(std::string_view(&held_byte_, 1));
  }
  return exchange_ && !exchange_done_;
}

void Http2Stream::sendContinue() {
  if (closed_ || response_submitted_) return;
  HeaderList none;
  submitHeaders(100, none, std::nullopt, false, false);
}

void Http2Stream::sendInformational(ResponseHead& head) {
  if (closed_ || response_submitted_) return;
  submitHeaders(head.status, head.headers, std::nullopt, false, false);
}

void Http2Stream::submitHeaders(int status, const HeaderList& headers,
                                std::optional<uint64_t> length, bool end_stream, bool with_body) {
  h2::HeaderBlock& block = connection_.block_;
  block.clear();
  char status_text[4];
  const int s = status < 100 || status > 999 ? 500 : status;
  status_text[0] = static_cast<char>('0' + s / 100);
  status_text[1] = static_cast<char>('0' + s / 10 % 10);
  status_text[2] = static_cast<char>('0' + s % 10);
  block.addLower(":status", std::string_view(status_text, 3));
  for (const HeaderField& f : headers.fields()) {
    if (!f.removed && !equalsIgnoreCase(f.name, "content-length")) block.add(f.name, f.value);
  }
  if (length) block.addContentLength(*length);
  nghttp2_session* session = connection_.session_;
  if (status < 200) {
    nghttp2_submit_headers(session, NGHTTP2_FLAG_NONE, id_, nullptr, block.data(), block.size(),
                           nullptr);
  } else if (with_body) {
    nghttp2_data_provider provider;
    provider.source.ptr = this;
    provider.read_callback = &Http2Stream::readData;
    nghttp2_submit_response(session, id_, block.data(), block.size(), &provider);
  } else {
    nghttp2_submit_headers(session, end_stream ? NGHTTP2_FLAG_END_STREAM : NGHTTP2_FLAG_NONE, id_,
                           nullptr, block.data(), block.size(), nullptr);
  }
  connection_.scheduleWrite();
}

void Http2Stream::sendResponseHead(ResponseHead& head, bool end_stream) {
  if (closed_) return;
  if (head.status == 101) {
    // The upstream accepted the websocket: RFC 8441 says so with a 200, and the stream's DATA
    // carry the tunnel both ways until either side ends it. The HTTP/1.1 handshake's proof
    // answers a key the client never sent.
    response_submitted_ = true;
    head.headers.remove("sec-websocket-accept");
    submitHeaders(200, head.headers, std::nullopt, false, true);
    return;
  }
  response_submitted_ = true;
  bodiless_ = is_head_ || head.status == 204 || head.status == 304;
  // 204 has no content-length; 304 and HEAD keep the upstream's (it describes the resource).
  std::optional<uint64_t> length = head.content_length;
  if (head.status == 204) length.reset();
  if (end_stream) {
    body_.end();
    // Said only when the head had a length: gRPC's trailers-only answers carry none, and a gRPC
    // client would show a content-length as the call's metadata.
    if (!bodiless_ && length) length = 0;
    submitHeaders(head.status, head.headers, length, true, false);
    return;
  }
  // The body goes through a data source (also when it turns out empty: HEAD, 204), so the end
  // of the response is always the moment its last frame is sent.
  submitHeaders(head.status, head.headers, length, false, true);
}

void Http2Stream::sendResponseBody(std::string_view data, bool end_stream) {
  if (closed_) return;
  if (!bodiless_) body_.append(data);
  if (end_stream) body_.end();
  if (body_.size() > kHighWatermark) body_.watchLowWatermark();
  resumeData();
}

void Http2Stream::sendResponseTrailers(HeaderList& trailers) {
  if (closed_) return;
  if (bodiless_) {
    body_.end();
  } else {
    body_.endWithTrailers(trailers);
  }
  resumeData();
}

void Http2Stream::resumeData() {
  body_.resume(connection_.session_, id_);
  connection_.scheduleWrite();
}

ssize_t Http2Stream::readData(nghttp2_session* session, int32_t id, uint8_t* buf, size_t length,
                              uint32_t* flags, nghttp2_data_source* source, void*) {
  auto* s = static_cast<Http2Stream*>(source->ptr);
  // A cut response whose bytes have all gone out: nghttp2 resets the stream (INTERNAL_ERROR).
  if (s->reset_after_body_ && s->body_.empty()) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  const ssize_t n = s->body_.read(session, id, buf, length, flags);
  if (n >= 0 && s->body_.belowLowWatermark()) {
    s->connection_.writable_.push_back(s);  // told after this output pass, not inside it
  }
  return n;
}

void Http2Stream::resetStream(ErrorCode reason) {
  if (closed_ || reset_after_body_) return;
  if (response_submitted_ && reason != ErrorCode::kClientDisconnected) {
    // A response cut short (the upstream failed or timed out after its head) still delivers its
    // head and the body bytes it was given, as HTTP/1 does and as the access log says (status,
    // bytes_out); the reset follows them (readData). Submitted now, RST_STREAM would overtake
    // them: nghttp2 sends it before the stream's DATA and drops what the stream still had
    // queued, often the HEADERS too.
    reset_after_body_ = true;
    resumeData();
    return;
  }
  const uint32_t code =
      reason == ErrorCode::kClientDisconnected ? NGHTTP2_CANCEL : NGHTTP2_INTERNAL_ERROR;
  nghttp2_submit_rst_stream(connection_.session_, NGHTTP2_FLAG_NONE, id_, code);
  connection_.scheduleWrite();
}

void Http2Stream::readDisable(bool disable) {
  request_window_.pause(disable);
  if (!disable && !closed_ && request_window_.repay(connection_.session_, id_)) {
    connection_.scheduleWrite();
  }
}

void Http2Stream::onExchangeComplete() {
  exchange_done_ = true;
  --connection_.active_streams_;
  connection_.loop().deferDelete(std::move(exchange_));
  if (closed_) {
    connection_.streamGone(*this);
    return;
  }
  if (!connection_.closed_) {
    // The response is complete before the request: ask the client to stop sending it, without
    // error (RFC 9113 section 8.1). A response that was cut is reset by resetStream.
    if (!request_done_ && !reset_after_body_) {
      nghttp2_submit_rst_stream(connection_.session_, NGHTTP2_FLAG_NONE, id_, NGHTTP2_NO_ERROR);
      connection_.scheduleWrite();
    }
  }
  connection_.armProgressTimer();
}

// ---- connection ----------------------------------------------------------------------------

Http2ServerConnection::Http2ServerConnection(ConnectionServices& services, int fd,
                                             size_t listener_index, PeerInfo peer,
                                             std::unique_ptr<TlsSession> tls)
    : ClientConnection(services.loop(), fd, listener_index),
      services_(services),
      peer_(peer),
      progress_timer_(services.loop().timers(), &Http2ServerConnection::onProgressTimer, this),
      header_timer_(services.loop().timers(), &Http2ServerConnection::onHeaderTimer, this) {
  if (tls) useTls(std::move(tls));
}

Http2ServerConnection::~Http2ServerConnection() {
  if (session_ != nullptr) nghttp2_session_del(session_);
}

void Http2ServerConnection::start(std::string_view preread) {
  const ListenerConfig& listener = services_.listener(listenerIndex());
  nghttp2_session_callbacks* callbacks = nullptr;
  nghttp2_session_callbacks_new(&callbacks);
  nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, &onBeginHeaders);
  nghttp2_session_callbacks_set_on_begin_frame_callback(callbacks, &onBeginFrame);
  nghttp2_session_callbacks_set_on_header_callback(callbacks, &onHeader);
  nghttp2_session_callbacks_set_on_invalid_header_callback(callbacks, &onInvalidHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, &onFrameRecv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, &onDataChunk);
  nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, &onFrameSend);
  nghttp2_session_callbacks_set_on_frame_not_send_callback(callbacks, &onFrameNotSend);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, &onStreamClose);
  h2::SessionLimits limits;
  limits.max_header_list_bytes = listener.limits.max_request_headers_size;
  // What we send are response heads, as large as the upstream codecs accept (64 KiB of fields)
  // plus our own fields, whatever limit the listener puts on what clients send: nghttp2's
  // bound counts each field's length and some bytes more.
  limits.max_send_header_block_bytes =
      std::max<size_t>(limits.max_header_list_bytes, kMaxResponseHeadBytes) + 16 * 1024;
  nghttp2_option* option = h2::newSessionOptions(limits, true);
  nghttp2_session_server_new2(&session_, callbacks, this, option);
  nghttp2_option_del(option);
  nghttp2_session_callbacks_del(callbacks);

  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, limits.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(kHighWatermark)},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
       static_cast<uint32_t>(listener.limits.max_request_headers_size)},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      // RFC 8441: websockets over this connection (extended CONNECT), when the listener allows
      // them at all.
      {NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, allowsWebsocket(listener) ? 1u : 0u},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kConnectionWindow);

  armProgressTimer();
  startEvents();
  if (!preread.empty()) {
    in_.append(preread);
    onData();
  }
  scheduleWrite();
  if (open()) readSoon();  // bytes may wait in the kernel or TLS: their edge was spent
}

Http2Stream* Http2ServerConnection::stream(int32_t id) {
  return static_cast<Http2Stream*>(nghttp2_session_get_stream_user_data(session_, id));
}

size_t Http2ServerConnection::readBudget() const {
  if (closed_) return 0;
  // A client that sends while not reading our answers (a PING or request flood) waits.
  return bufferedOutput() >= kOutputCap ? 0 : BufferCache::kBlockSize;
}

void Http2ServerConnection::onData() {
  if (closed_) return;
  armProgressTimer();
  ++in_session_;
  const ssize_t r =
      nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(in_.data()), in_.size());
  --in_session_;
  in_.clear();
  in_.releaseIfEmpty();
  if (r < 0) {
    // Fatal (a bad preface, a flood of frames we must answer): no GOAWAY can help. Protocol
    // errors are not fatal here: nghttp2 queues GOAWAY and stops reading, and the connection
    // closes once it is sent (checkDone).
    services_.metrics().rejected("http2_fatal");
    close_pending_ = true;
  }
  scheduleWrite();
  afterSessionCall();
}

bool Http2ServerConnection::beforeWrite() {
  if (closed_ || !open()) return false;
  ++in_session_;
  const bool ok = h2::pumpOutput(session_, out_, kOutputCap);
  --in_session_;
  if (!ok) close_pending_ = true;
  afterSessionCall();
  return !closed_;
}

void Http2ServerConnection::afterWrite() {
  if (closed_ || !open()) return;
  // Streams whose body went below the low watermark resume their upstream now, outside nghttp2.
  std::vector<Http2Stream*> writable;
  writable.swap(writable_);
  for (Http2Stream* s : writable) {
    if (s->exchange_ && !s->exchange_done_) s->exchange_->onDownstreamWritable();
  }
  checkDone();
}

void Http2ServerConnection::onOutputProgress() {
  armProgressTimer();
  if (bufferedOutput() < kOutputCap && nghttp2_session_want_write(session_)) scheduleWrite();
}

void Http2ServerConnection::onOutputDrained() {
  if (closed_) return;
  if (nghttp2_session_want_write(session_)) scheduleWrite();
}

void Http2ServerConnection::afterSessionCall() {
  if (close_pending_ && in_session_ == 0) closeConnection(close_reason_);
}

void Http2ServerConnection::checkDone() {
  if (closed_) return;
  // After GOAWAY both are false once the last frames went out.
  if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_) &&
      bufferedOutput() == 0) {
    closeConnection(ErrorCode::kClientDisconnected);
  }
}

// ---- nghttp2 callbacks ---------------------------------------------------------------------

int Http2ServerConnection::onBeginFrame(nghttp2_session* session, const nghttp2_frame_hd* hd,
                                        void* user) {
  Http2ServerConnection* c = self(user);
  if (hd->type != NGHTTP2_CONTINUATION) {
    c->continuations_ = 0;
  } else if (++c->continuations_ == kMaxContinuations &&
             (hd->flags & NGHTTP2_FLAG_END_HEADERS) == 0 &&
             nghttp2_session_want_read(session) != 0) {
    c->services_.metrics().rejected("h2_continuation_flood");
    nghttp2_session_terminate_session(session, NGHTTP2_ENHANCE_YOUR_CALM);
    c->scheduleWrite();
  }
  return 0;
}

int Http2ServerConnection::onBeginHeaders(nghttp2_session* session, const nghttp2_frame* frame,
                                          void* user) {
  Http2ServerConnection* c = self(user);
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    auto* s = new Http2Stream(*c, frame->hd.stream_id);
    s->start_ = Clock::now();
    s->start_wall_ = std::chrono::system_clock::now();
    c->streams_.pushBack(*s);
    nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, s);
    c->idle_goaway_ = false;
  } else if (Http2Stream* s = c->stream(frame->hd.stream_id)) {
    s->received_.clear();  // trailers
  }
  if ((frame->hd.flags & NGHTTP2_FLAG_END_HEADERS) == 0) {
    c->header_timer_.arm(c->services_.listener(c->listenerIndex()).timeouts.request_headers);
  }
  return 0;
}

int Http2ServerConnection::onHeader(nghttp2_session*, const nghttp2_frame* frame,
                                    const uint8_t* name, size_t namelen, const uint8_t* value,
                                    size_t valuelen, uint8_t, void* user) {
  Http2ServerConnection* c = self(user);
  Http2Stream* s = c->stream(frame->hd.stream_id);
  if (s == nullptr || s->refused_ != ErrorCode::kNone) return 0;
  const ListenerConfig& listener = c->services_.listener(c->listenerIndex());
  // The contract's header limits, counted on the decoded block (HPACK can make a small frame
  // decode into a large list).
  const bool pseudo = namelen > 0 && name[0] == ':';
  if (s->received_.bytes() + namelen + valuelen > listener.limits.max_request_headers_size ||
      (!pseudo && s->received_.count() >= listener.limits.max_request_headers_count + 4)) {
    s->refused_ = ErrorCode::kHeadersTooLarge;
    return 0;
  }
  s->received_.add(h2::view(name, namelen), h2::view(value, valuelen));
  return 0;
}

int Http2ServerConnection::onInvalidHeader(nghttp2_session*, const nghttp2_frame*, const uint8_t*,
                                           size_t, const uint8_t*, size_t, uint8_t, void*) {
  // A field nghttp2 would silently drop (a control byte in a value, an odd name): the request
  // is malformed (RFC 9113 section 8.2.1), the stream is reset with PROTOCOL_ERROR.
  return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
}

int Http2ServerConnection::onFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  Http2ServerConnection* c = self(user);
  const bool end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  switch (frame->hd.type) {
    case NGHTTP2_HEADERS: {
      c->header_timer_.cancel();
      Http2Stream* s = c->stream(frame->hd.stream_id);
      if (s == nullptr) return 0;
      if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
        c->headersComplete(*s, end_stream);
      } else if (end_stream) {
        c->trailersComplete(*s);
      }
      return 0;
    }
    case NGHTTP2_DATA:
      if (end_stream) {
        if (Http2Stream* s = c->stream(frame->hd.stream_id)) c->requestEnded(*s);
      }
      return 0;
    case NGHTTP2_RST_STREAM: {
      // Rapid reset: only a stream still open with us counts (nghttp2 closes it after this).
      Http2Stream* s = c->stream(frame->hd.stream_id);
      if (s != nullptr && !s->closed_ && !c->reset_budget_.spend(Clock::now()) &&
          nghttp2_session_want_read(c->session_) != 0) {  // not terminating already
        c->services_.metrics().rejected("h2_rapid_reset");
        nghttp2_session_terminate_session(c->session_, NGHTTP2_ENHANCE_YOUR_CALM);
        c->scheduleWrite();
      }
      return 0;
    }
    default:
      return 0;
  }
}

void Http2ServerConnection::headersComplete(Http2Stream& s, bool end_stream) {
  s.request_done_ = end_stream;
  RequestHead head;
  ErrorCode error = s.refused_;
  bool valid = error == ErrorCode::kNone &&
               h2::buildRequestHead(s.received_, s.connection_.tls() != nullptr, head, &error);
  if (valid && !end_stream && head.content_length) {
    // Declared and not ended: see body_left_. An empty body has no byte to hold back, so it
    // goes as chunked, complete only when END_STREAM confirms it is empty.
    if (*head.content_length == 0) head.content_length.reset();
    s.body_left_ = head.content_length;
  }
  if (valid) head.chunked = !end_stream && !head.content_length;
  if (valid && !head.upgrade.empty()) {
    // An extended CONNECT: its DATA are the tunnel's bytes, not a body.
    if (!equalsIgnoreCase(head.upgrade, "websocket") ||
        !allowsWebsocket(services_.listener(listenerIndex()))) {
      error = ErrorCode::kNotImplemented;
      valid = false;
    } else {
      head.chunked = false;
      head.content_length = 0;
      s.body_left_.reset();
      // An HTTP/1.1 upgrade needs the handshake's nonce, which RFC 8441 leaves out.
      head.headers.remove("sec-websocket-key");
      head.headers.addCopy("sec-websocket-key", h2::websocketKey());
    }
  }
  Exchange& exchange = s.newExchange();
  s.is_head_ = head.method == "HEAD";
  if (!valid) {
    // Log what the head said, as far as it got.
    for (const auto [name, value] : s.received_) {
      if (name == ":method") exchange.context().method = value;
      if (name == ":path") exchange.context().path = value;
    }
    exchange.context().protocol = Protocol::kHttp2;
    s.received_.clear();
    exchange.sendLocalReply(error);
    return;
  }
  exchange.onRequestHeaders(head);
  s.received_.release();
  if (end_stream && s.exchange_ && !s.exchange_done_) s.exchange_->onRequestComplete();
}

void Http2ServerConnection::trailersComplete(Http2Stream& s) {
  s.request_done_ = true;
  if (!s.releaseHeldByte()) return;
  HeaderList trailers;
  h2::buildTrailers(s.received_, trailers);
  s.exchange_->onRequestTrailers(trailers);
  s.received_.clear();
}

void Http2ServerConnection::requestEnded(Http2Stream& s) {
  s.request_done_ = true;
  if (s.releaseHeldByte()) s.exchange_->onRequestComplete();
}

int Http2ServerConnection::onDataChunk(nghttp2_session* session, uint8_t, int32_t id,
                                       const uint8_t* data, size_t len, void* user) {
  Http2ServerConnection* c = self(user);
  // The connection window is given back at once; the stream's only as its body moves on.
  nghttp2_session_consume_connection(session, len);
  Http2Stream* s = c->stream(id);
  if (s == nullptr || !s->exchange_ || s->exchange_done_) {
    nghttp2_session_consume_stream(session, id, len);
    return 0;
  }
  s->requestBody(h2::view(data, len));
  if (s->exchange_done_ || s->closed_) return 0;
  s->request_window_.delivered(session, id, len);
  return 0;
}

int Http2ServerConnection::onFrameSend(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  Http2ServerConnection* c = self(user);
  if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) == 0) return 0;
  if (frame->hd.type != NGHTTP2_DATA && frame->hd.type != NGHTTP2_HEADERS) return 0;
  Http2Stream* s = c->stream(frame->hd.stream_id);
  if (s != nullptr && s->exchange_ && !s->exchange_done_) s->exchange_->onResponseSent();
  return 0;
}

int Http2ServerConnection::onFrameNotSend(nghttp2_session* session, const nghttp2_frame* frame, int,
                                          void* user) {
  // A response head nghttp2 cannot send (larger than even the generous limit above): it leaves
  // the stream open, and the client would wait for it forever. Reset the stream instead.
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  Http2ServerConnection* c = self(user);
  Http2Stream* s = c->stream(frame->hd.stream_id);
  if (s == nullptr || s->closed_) return 0;
  s->head_not_sent_ = true;
  nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                            NGHTTP2_INTERNAL_ERROR);
  return 0;
}

int Http2ServerConnection::onStreamClose(nghttp2_session*, int32_t id, uint32_t error_code,
                                         void* user) {
  Http2ServerConnection* c = self(user);
  Http2Stream* s = c->stream(id);
  if (s == nullptr) return 0;
  s->closed_ = true;
  c->header_timer_.cancel();
  if (s->exchange_ && !s->exchange_done_) {
    // The client reset the stream, or nghttp2 did (a malformed message), or we did (a response
    // head that could not be sent): the request is over.
    if (s->head_not_sent_) s->exchange_->context().status = 0;  // the client got no status
    s->exchange_->onDownstreamReset(s->head_not_sent_ ? ErrorCode::kUpstreamProtocolError
                                    : error_code == NGHTTP2_PROTOCOL_ERROR
                                        ? ErrorCode::kBadRequest
                                        : ErrorCode::kClientDisconnected);
    return 0;  // onExchangeComplete sees closed_ and deletes the stream
  }
  if (!s->exchange_done_) {
    // Refused before its head was complete (an invalid field): still one access-log line.
    Exchange& exchange = s->newExchange();
    exchange.context().protocol = Protocol::kHttp2;
    exchange.onDownstreamReset(ErrorCode::kBadRequest);
    return 0;
  }
  c->streamGone(*s);
  return 0;
}

void Http2ServerConnection::streamGone(Http2Stream& s) {
  if (session_ != nullptr && !closed_)
    nghttp2_session_set_stream_user_data(session_, s.id_, nullptr);
  s.leaveList();
  loop().deferDelete(std::unique_ptr<Deletable>(&s));
  if (draining_ && active_streams_ == 0 && !closed_) {
    nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);
    scheduleWrite();
  }
  armProgressTimer();
}

// ---- timers, drain, close ------------------------------------------------------------------

void Http2ServerConnection::armProgressTimer() {
  if (closed_) return;
  progress_timer_.arm(services_.listener(listenerIndex()).timeouts.idle);
}

bool Http2ServerConnection::clientStalled() {
  if (bufferedOutput() > 0) return true;  // nothing of it was taken for a whole idle timeout
  if (nghttp2_session_get_remote_window_size(session_) <= 0) return true;
  for (Http2Stream* s = streams_.front(); s != nullptr; s = streams_.next(*s)) {
    if (!s->body_.empty() && nghttp2_session_get_stream_remote_window_size(session_, s->id_) <= 0)
      return true;
  }
  return false;
}

void Http2ServerConnection::onProgressTimer(void* arg) {
  auto* c = static_cast<Http2ServerConnection*>(arg);
  if (c->active_streams_ == 0) {
    if (c->idle_goaway_ || c->bufferedOutput() > 0) {
      c->closeConnection(ErrorCode::kClientTimeout);  // the GOAWAY did not leave either
      return;
    }
    // Idle: say goodbye with GOAWAY; the connection closes once it is sent.
    c->services_.metrics().timedOut("client_idle");
    c->idle_goaway_ = true;
    nghttp2_session_terminate_session(c->session_, NGHTTP2_NO_ERROR);
    c->scheduleWrite();
    c->progress_timer_.arm(std::chrono::milliseconds(1000));
    return;
  }
  if (c->clientStalled()) {
    // Responses wait for a client that neither reads nor opens its window.
    c->services_.metrics().timedOut("client_write");
    c->closeConnection(ErrorCode::kClientTimeout);
    return;
  }
  c->armProgressTimer();  // every stream waits for its upstream, bounded by its own timeout
}

void Http2ServerConnection::onHeaderTimer(void* arg) {
  auto* c = static_cast<Http2ServerConnection*>(arg);
  c->services_.metrics().timedOut("request_headers");
  c->closeConnection(ErrorCode::kRequestHeaderTimeout);
}

void Http2ServerConnection::drain() {
  if (closed_ || draining_) return;
  draining_ = true;
  if (active_streams_ == 0) {
    nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);
  } else {
    nghttp2_submit_shutdown_notice(session_);
  }
  scheduleWrite();
}

void Http2ServerConnection::abandon() {
  std::vector<Http2Stream*> all;
  for (Http2Stream* s = streams_.front(); s != nullptr; s = streams_.next(*s))
    all.push_back(s);
  for (Http2Stream* s : all) {
    if (s->exchange_ && !s->exchange_done_) s->exchange_->sendLocalReply(ErrorCode::kDraining);
  }
}

void Http2ServerConnection::abort() {
  closeConnection(ErrorCode::kClientDisconnected);
}

void Http2ServerConnection::onPeerClosed() {
  closeConnection(ErrorCode::kClientDisconnected);
}

void Http2ServerConnection::onSocketError(int) {
  closeConnection(ErrorCode::kClientDisconnected);
}

void Http2ServerConnection::closeConnection(ErrorCode reason) {
  if (closed_) return;
  if (in_session_ > 0) {
    close_pending_ = true;  // nghttp2 is running: close once it returns
    close_reason_ = reason;
    return;
  }
  closed_ = true;
  progress_timer_.cancel();
  header_timer_.cancel();
  std::vector<Http2Stream*> all;
  for (Http2Stream* s = streams_.front(); s != nullptr; s = streams_.next(*s))
    all.push_back(s);
  for (Http2Stream* s : all) {
    s->closed_ = true;
    if (s->exchange_ && !s->exchange_done_) s->exchange_->onDownstreamReset(reason);
    if (!s->exchange_done_ && !s->exchange_) {
      // A stream whose head never completed still gets its line.
      s->newExchange().onDownstreamReset(reason);
    }
  }
  // onExchangeComplete deleted the closed streams; any left are deleted here.
  while (Http2Stream* s = streams_.front()) {
    s->leaveList();
    loop().deferDelete(std::unique_ptr<Deletable>(s));
  }
  closeSocket();
  services_.owner().connectionClosed(*this);
}

}  // namespace viscount
